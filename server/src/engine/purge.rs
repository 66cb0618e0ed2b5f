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
    let mut out = Vec::new();
    for name in tables {
        let table = ctx.schema.table(name).ok_or_else(|| MutationError::UnknownTable(name.clone()))?;
        for (key, row) in txn.all_rows(table)? {
            txn.archive_row(archive, table, &key, &row, &now.iso)?;
            let delete = Mutation::new(name, Action::Delete, Value::Object(key_values(table, &row)));
            let how = How {
                source: "purge",
                meta: &Value::Null,
                strictness: Strictness::Import,
                sender: &system,
                transaction: Some(transaction),
            };
            out.push(write_one(txn, ctx, &delete, &how, now)?);
        }
    }
    Ok(out)
}
