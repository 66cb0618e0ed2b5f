//! Defaults for rows stored before their field existed: when a schema gains a field with a
//! literal default, every stored row lacking it gets it, written through the module's writer like
//! any change (logged, so deltas, live queries and other nodes see it).
//!
//! Stateless, so a crash half-way loses nothing: each open looks for rows lacking such a field
//! (`field = null`, answered by an index of only those rows: nothing is read once they have their
//! defaults) and patches them; a second run finds none.
//! Each patch expects the version it read, so a client's write in between wins and the row is
//! looked at again.

use std::sync::Arc;

use mishkah_core::mutation::MutationError;
use mishkah_core::query::{Filter, Op, Operand};
use mishkah_core::record::{backfill, backfill_value, Strictness};
use mishkah_core::{mutation::row_version, Action, Mutation, Row, Table};
use serde_json::Value;

use super::handle::ModuleHandle;
use super::WriteError;
use crate::storage::PageQuery;

/// Rows read and patched at a time.
const PAGE: usize = 500;
/// Passes over a table whose rows clients kept changing under us before leaving the rest to the
/// next start.
const PASSES: usize = 3;

/// Backfills every table of the module; what it did is logged per table.
pub(super) async fn run(handle: &Arc<ModuleHandle>) {
    for table in handle.schema.tables.values() {
        let fields: Vec<&str> =
            table.fields.iter().filter(|f| backfill_value(f).is_some()).map(|f| f.name.as_str()).collect();
        let mut done = Done::default();
        // One field at a time: each has an index of the rows where it is null (`lacking_default`),
        // which a disjunction would not use.
        for field in &fields {
            let lacking = Filter::compare(Operand::field(field), Op::Eq, Operand::Value(Value::Null));
            for _ in 0..PASSES {
                let pass = table_pass(handle, table, &lacking).await;
                done.add(&pass);
                if pass.conflicts == 0 {
                    break;
                }
            }
        }
        if done.given + done.refused + done.conflicts > 0 {
            tracing::info!(
                branch = %handle.branch, module = %handle.module, table = %table.name, fields = %fields.join(", "),
                backfilled = done.given, refused = done.refused, changed_meanwhile = done.conflicts,
                "gave rows stored before these fields existed their defaults"
            );
        }
    }
}

#[derive(Default)]
struct Done {
    given: usize,
    refused: usize,
    conflicts: usize,
}

impl Done {
    fn add(&mut self, other: &Done) {
        self.given += other.given;
        self.refused += other.refused;
        self.conflicts += other.conflicts;
    }
}

async fn table_pass(handle: &Arc<ModuleHandle>, table: &Table, lacking: &Filter) -> Done {
    let mut done = Done::default();
    let mut after: Option<String> = None;
    loop {
        let query =
            PageQuery { after_key: after.clone(), limit: PAGE, filter: Some(lacking.clone()), ..Default::default() };
        let stored = table.clone();
        let page = handle.read(move |r, _| r.page(&stored, &query)).await;
        let rows = match page {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(branch = %handle.branch, module = %handle.module, table = %table.name, error = %e,
                    "backfill stopped: the rows could not be read (the next start tries again)");
                return done;
            }
        };
        let Some(last) = rows.last() else { return done };
        after = mishkah_core::RecordKey::of(table, last).ok().map(|k| k.0);
        let patches: Vec<Mutation> = rows.iter().filter_map(|row| patch(table, row)).collect();
        for outcome in handle.write_each(patches, "schema", Strictness::Import).await {
            match outcome {
                Ok(_) => done.given += 1,
                Err(WriteError::Mutation(MutationError::Conflict(_) | MutationError::NotFound { .. })) => {
                    done.conflicts += 1
                }
                Err(e) => {
                    done.refused += 1;
                    tracing::warn!(branch = %handle.branch, module = %handle.module, table = %table.name,
                        code = e.code(), "a row could not be given its defaults: {e}");
                }
            }
        }
        if after.is_none() || rows.len() < PAGE {
            return done;
        }
    }
}

/// The merge giving `row` its missing defaults, expecting the version read.
fn patch(table: &Table, row: &Row) -> Option<Mutation> {
    let mut record = backfill(table, row);
    if record.is_empty() {
        return None;
    }
    for key in table.key_fields() {
        let field = table.field(key);
        let value = row.get(key).or_else(|| field.and_then(|f| row.get(&f.column)))?;
        record.insert(key.to_owned(), value.clone());
    }
    Some(Mutation::new(&table.name, Action::Merge, Value::Object(record)).expecting(row_version(row)))
}
