//! A purge: every row of some tables archived, then deleted through the one write path (each
//! deletion logged, all in one transaction).

use mishkah_core::mutation::MutationError;
use mishkah_core::record::Strictness;
use mishkah_core::{Action, Mutation};
use serde_json::Value;

use super::sender::Sender;
use super::write_one::{key_values, write_one, How, Now};
use super::writer::WriterContext;
use super::{Committed, WriteError};
use crate::storage::WriteTxn;

/// The source of a purge's deletions in the log.
pub const PURGE_SOURCE: &str = "purge";

/// The archive a logged purge deletion moved its row to, with that row.
pub fn archived(logged: &crate::storage::LoggedEvent) -> Option<(&str, &mishkah_core::Row)> {
    match (&logged.before, logged.source.as_str(), logged.meta.get("archive").and_then(Value::as_str)) {
        (crate::storage::Before::Row(row), PURGE_SOURCE, Some(archive)) => Some((archive, row)),
        _ => None,
    }
}

/// Archives every row of `tables` into `archive`, then deletes it.
pub(super) fn purge(
    txn: &mut dyn WriteTxn,
    ctx: &WriterContext,
    tables: &[String],
    archive: &str,
    now: &Now,
    transaction: &str,
) -> Result<Vec<Committed>, WriteError> {
    let system = Sender::system();
    // Each deletion names its archive: a replay of the log (a point-in-time restore) archives
    // the row (the row before, which the log keeps) as the purge did.
    let meta = serde_json::json!({ "archive": archive });
    let mut out = Vec::new();
    for name in tables {
        let table = ctx.schema.table(name).ok_or_else(|| MutationError::UnknownTable(name.clone()))?;
        for (key, row) in txn.all_rows(table)? {
            txn.archive_row(archive, table, &key, &row, &now.iso)?;
            let delete = Mutation::new(name, Action::Delete, Value::Object(key_values(table, &row)));
            let how = How {
                source: PURGE_SOURCE,
                meta: &meta,
                strictness: Strictness::Import,
                sender: &system,
                transaction: Some(transaction),
            };
            out.push(write_one(txn, ctx, &delete, &how, now)?);
        }
    }
    Ok(out)
}
