//! Fault injection: a write transaction that fails after a number of writes, as a disk that fills
//! up or a connection that drops would make it fail.

use std::collections::BTreeMap;

use mishkah_core::schema::Table;
use mishkah_core::sequence::SequenceRule;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, RecordKey, Row};

use crate::{NewEvent, Replay, StorageError, WriteTxn};

/// Passes every operation to the transaction it wraps until `left` row and event writes have been
/// made; then each write fails with a storage error (the transaction itself is left to the caller
/// to abandon, as the engine's writer does).
pub struct Failing<'t> {
    inner: &'t mut dyn WriteTxn,
    left: usize,
}

impl<'t> Failing<'t> {
    pub fn new(inner: &'t mut dyn WriteTxn, writes: usize) -> Failing<'t> {
        Failing { inner, left: writes }
    }

    fn spend(&mut self) -> Result<(), StorageError> {
        match self.left.checked_sub(1) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(StorageError::Database("injected fault: the store fails".into())),
        }
    }
}

impl WriteTxn for Failing<'_> {
    fn row(&mut self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        self.inner.row(table, key)
    }
    fn store_change(&mut self, table: &Table, change: &Change) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.store_change(table, change)
    }
    fn append_event(&mut self, event: NewEvent<'_>) -> Result<ChangeEvent, StorageError> {
        self.spend()?;
        self.inner.append_event(event)
    }
    fn import_event(&mut self, logged: &crate::LoggedEvent) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.import_event(logged)
    }
    fn last_event_id(&mut self) -> Result<Option<String>, StorageError> {
        self.inner.last_event_id()
    }
    fn committed_event(&mut self, scope: &str, id: &str) -> Result<Option<Replay>, StorageError> {
        self.inner.committed_event(scope, id)
    }
    fn peek_counter(&mut self, counter_key: &str, rule: &SequenceRule) -> Result<i64, StorageError> {
        self.inner.peek_counter(counter_key, rule)
    }
    fn set_counter(&mut self, counter_key: &str, last: i64, now: &str) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.set_counter(counter_key, last, now)
    }
    fn all_rows(&mut self, table: &Table) -> Result<Vec<(RecordKey, Row)>, StorageError> {
        self.inner.all_rows(table)
    }
    fn rows_where(&mut self, table: &Table, filter: &mishkah_core::query::Filter) -> Result<Vec<Row>, StorageError> {
        self.inner.rows_where(table, filter)
    }
    fn archive_row(
        &mut self,
        archive: &str,
        table: &Table,
        key: &RecordKey,
        row: &Row,
        now: &str,
    ) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.archive_row(archive, table, key, row, now)
    }
    fn reset_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<(), StorageError> {
        self.spend()?;
        self.inner.reset_counters(counters, now)
    }
    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }
    fn abandon(&mut self) {
        self.inner.abandon()
    }
    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.inner.savepoint()
    }
    fn release(&mut self) -> Result<(), StorageError> {
        self.inner.release()
    }
    fn rollback_to(&mut self) -> Result<(), StorageError> {
        self.inner.rollback_to()
    }
}
