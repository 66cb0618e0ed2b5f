//! A transaction as the store builds it while the app's function runs (`store.transaction(fn)`):
//! what the function read — the preconditions the server checks — and what it wrote, each write
//! checked by the core against the view as the transaction's earlier writes left it. Free of any
//! browser API, so it is tested natively.

use std::collections::{BTreeMap, BTreeSet};

use mishkah_core::mutation::row_version;
use mishkah_core::record::fill_key;
use mishkah_core::wire::TransactionRead;
use mishkah_core::{Action, Mutation, RecordKey, Row, Timestamp};
use serde_json::Value;

use crate::state::{ClientState, Refused};

/// Reads and writes of one run of a transaction's function.
#[derive(Debug, Default)]
pub struct Draft {
    reads: Vec<TransactionRead>,
    /// `(table, key)`s read or written: a row is a precondition only the first time it is read,
    /// and never after the transaction wrote it (it reads its own write then).
    seen: BTreeSet<(String, RecordKey)>,
    writes: Vec<Mutation>,
    /// The rows as this transaction's writes left them (`None`: deleted).
    written: BTreeMap<(String, RecordKey), Option<Row>>,
}

impl Draft {
    /// The row `key` of `table` as the transaction sees it; the first read of a row the
    /// transaction has not written becomes a precondition (its version, or that it is absent).
    pub fn get(&mut self, state: &ClientState, table: &str, key: &RecordKey, now: Timestamp) -> Option<Row> {
        let at = (table.to_owned(), key.clone());
        if let Some(row) = self.written.get(&at) {
            return row.clone();
        }
        let row = state.view_row(table, key, now);
        if self.seen.insert(at) {
            self.reads.push(TransactionRead {
                table: table.to_owned(),
                id: Value::String(key.0.clone()),
                version: row.as_ref().map(row_version),
                exists: row.is_none().then_some(false),
            });
        }
        row
    }

    /// Adds a write, checked as the server would check it against the row as this transaction
    /// sees it. An insert without a key gets `fresh_key`. A write that names no version of a row
    /// the server versions gets the version the transaction sees, as the store's own writes do.
    pub fn write(
        &mut self,
        state: &ClientState,
        mut mutation: Mutation,
        fresh_key: &str,
        now: Timestamp,
    ) -> Result<(), Refused> {
        let table = state.table_of(&mutation.table)?.clone();
        let sent = mutation.record.clone();
        if matches!(mutation.action, Action::Insert | Action::Save) && RecordKey::of(&table, &mutation.record).is_err()
        {
            fill_key(&table, &mut mutation.record, fresh_key);
        }
        let key = RecordKey::of(&table, &mutation.record).map_err(mishkah_core::MutationError::from)?;
        let at = (table.name.clone(), key.clone());
        let current = match self.written.get(&at) {
            Some(row) => row.clone(),
            None => state.view_row(&table.name, &key, now),
        };
        if mutation.expected_version.is_none()
            && mutation.action != Action::Insert
            && mishkah_core::VersionPolicy::default().requires_version(&table.name)
        {
            mutation.expected_version = current.as_ref().map(row_version);
        }
        let change = state.check(&table, current.as_ref(), &mutation, &sent, now)?;
        self.seen.insert(at.clone());
        self.written.insert(at, change.row);
        self.writes.push(mutation);
        Ok(())
    }

    /// Whether the function wrote anything.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// What the server needs: the reads and the writes, in order.
    pub fn finish(self) -> (Vec<TransactionRead>, Vec<Mutation>) {
        (self.reads, self.writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::Schema;
    use serde_json::json;

    fn state() -> ClientState {
        let schema = Schema::from_json(&json!({"tables": {
            "order_header": {"fields": {"id": {"type": "text", "primaryKey": true}, "total": {"type": "decimal"}}},
            "note": {"fields": {"id": {"type": "text", "primaryKey": true}, "body": {"type": "text"}}}
        }}))
        .unwrap();
        let mut s = ClientState::new(Some(schema));
        s.on_snapshot(&json!({"version": 10, "tables": {
            "order_header": [{"id": "o1", "total": 5, "version": 3}],
            "note": [{"id": "n1", "body": "a", "version": 1}]}}));
        s
    }

    fn key(k: &str) -> RecordKey {
        RecordKey(k.into())
    }

    #[test]
    fn first_reads_become_preconditions_and_reads_after_a_write_see_it() {
        let s = state();
        let mut d = Draft::default();
        assert_eq!(d.get(&s, "order_header", &key("o1"), Timestamp(0)).unwrap()["total"], json!(5));
        assert!(d.get(&s, "note", &key("ghost"), Timestamp(0)).is_none());
        d.get(&s, "order_header", &key("o1"), Timestamp(0));
        let merge = Mutation::new("order_header", Action::Merge, json!({"id": "o1", "total": 9}));
        d.write(&s, merge, "k", Timestamp(0)).unwrap();
        assert_eq!(d.get(&s, "order_header", &key("o1"), Timestamp(0)).unwrap()["total"], json!(9));
        let insert = Mutation::new("note", Action::Insert, json!({"body": "new"}));
        d.write(&s, insert, "fresh-1", Timestamp(0)).unwrap();
        assert_eq!(d.get(&s, "note", &key("fresh-1"), Timestamp(0)).unwrap()["body"], json!("new"));
        let (reads, writes) = d.finish();
        let reads: Vec<Value> = reads.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
        assert_eq!(
            reads,
            [
                json!({"table": "order_header", "id": "o1", "version": 3}),
                json!({"table": "note", "id": "ghost", "exists": false})
            ]
        );
        assert_eq!(writes[0].expected_version, Some(3), "the version the transaction saw");
        assert_eq!(writes[1].record["id"], json!("fresh-1"), "the key travels with the write");
    }

    #[test]
    fn a_write_the_core_refuses_is_refused_against_the_transactions_own_view() {
        let s = state();
        let mut d = Draft::default();
        d.write(&s, Mutation::new("note", Action::Delete, json!({"id": "n1"})), "k", Timestamp(0)).unwrap();
        let again = Mutation::new("note", Action::Merge, json!({"id": "n1", "body": "b"}));
        assert_eq!(d.write(&s, again, "k", Timestamp(0)).unwrap_err().code(), "not-found");
        let unknown = Mutation::new("nope", Action::Insert, json!({"id": "x"}));
        assert_eq!(d.write(&s, unknown, "k", Timestamp(0)).unwrap_err().code(), "table-not-found");
        assert_eq!(d.finish().1.len(), 1, "refused writes are not kept");
    }
}
