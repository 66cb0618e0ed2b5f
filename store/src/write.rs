//! Writing: the module's one writer, its transactions, and what one write needs inside one.

use std::collections::BTreeMap;

use mishkah_core::schema::Table;
use mishkah_core::sequence::SequenceRule;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, RecordKey, Row};

use crate::{NewEvent, Replay, StorageError};

/// The one writer of a module (the engine's writer thread holds it): write transactions, and the
/// maintenance that must run in order with the writes.
pub trait ModuleWriter: Send {
    /// The last committed sequence.
    fn head(&self) -> u64;
    /// Starts the write transaction. Dropping it without [`Transaction::commit`] rolls
    /// everything back.
    fn begin(&mut self) -> Result<Box<dyn Transaction + '_>, StorageError>;
    /// Marks the module as initialized (after seeding), so a restart does not seed again.
    fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError>;
    /// Builds `table`'s search index if it has none yet (then every write keeps it).
    fn enable_search(&mut self, table: &Table) -> Result<(), StorageError>;
    /// Creates a table for data the schema does not know (seed tables such as `add_ons`).
    fn add_adhoc_table(&mut self, table: &Table) -> Result<(), StorageError>;
    /// Sets counters that are not set yet (the original's `sequence-state.json` on first start).
    fn import_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<usize, StorageError>;
    /// Compacts the log through `through`: later cursors before it must resync in full.
    fn compact(&mut self, through: u64) -> Result<usize, StorageError>;
    /// Records that the log was compacted through `through` (a copy of a compacted log: its
    /// first events are gone, its head and mark are kept).
    fn import_compaction(&mut self, through: u64) -> Result<(), StorageError>;
    /// Runs between two batches: housekeeping that needs the writer's own connection (SQLite
    /// finishes a checkpoint its checkpointer could not). Failures are the backend's to log.
    fn between_batches(&mut self) {}
}

/// An open write transaction.
pub trait Transaction {
    /// The operations available inside.
    fn ops(&mut self) -> &mut dyn WriteTxn;
    /// Commits. On failure nothing of the transaction is kept.
    fn commit(self: Box<Self>) -> Result<(), StorageError>;
}

/// What a batch's writes are about to read, named before the first of them runs: a backend that
/// pays a round trip per read fetches them all at once.
#[derive(Default)]
pub struct Prefetch<'a> {
    /// Rows, by table and key.
    pub rows: Vec<(&'a Table, RecordKey)>,
    /// Mutation ids, as `(sender scope, id)`.
    pub mutations: Vec<(&'a str, &'a str)>,
}

impl Prefetch<'_> {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.mutations.is_empty()
    }
}

/// Operations of one write inside the write transaction.
pub trait WriteTxn {
    /// A hint, not a read: every read after it must answer as it would without it, whatever
    /// the batch writes or undoes in between. SQLite reads its own pages and ignores it.
    fn prefetch(&mut self, _wants: &Prefetch<'_>) -> Result<(), StorageError> {
        Ok(())
    }
    /// The stored row with this key.
    fn row(&mut self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError>;
    /// Stores the row of a change (or removes it for a delete).
    fn store_change(&mut self, table: &Table, change: &Change) -> Result<(), StorageError>;
    /// Appends to the event log, assigning the next gap-free sequence number.
    fn append_event(&mut self, event: NewEvent<'_>) -> Result<ChangeEvent, StorageError>;
    /// Appends an event from another store's log as it was logged there (its sequence, which
    /// must be after this log's head, its id, its mutation id): a copy, not a new write.
    fn import_event(&mut self, logged: &crate::LoggedEvent) -> Result<(), StorageError>;
    /// The id of the log's last event, as this transaction sees it.
    fn last_event_id(&mut self) -> Result<Option<String>, StorageError>;
    /// The committed event of `scope`'s mutation `id`, if it was already applied.
    fn committed_event(&mut self, scope: &str, id: &str) -> Result<Option<Replay>, StorageError>;
    /// The value a sequence counter would advance to, without advancing it.
    fn peek_counter(&mut self, counter_key: &str, rule: &SequenceRule) -> Result<i64, StorageError>;
    /// Sets a sequence counter's last value.
    fn set_counter(&mut self, counter_key: &str, last: i64, now: &str) -> Result<(), StorageError>;
    /// Advances a sequence counter and returns its new value.
    fn next_counter(&mut self, counter_key: &str, rule: &SequenceRule, now: &str) -> Result<i64, StorageError> {
        let next = self.peek_counter(counter_key, rule)?;
        self.set_counter(counter_key, next, now)?;
        Ok(next)
    }
    /// Every row of a table with its key.
    fn all_rows(&mut self, table: &Table) -> Result<Vec<(RecordKey, Row)>, StorageError>;
    /// The rows `filter` (variables bound) lets through, in insertion order: what a transaction
    /// reads before it decides its writes.
    fn rows_where(&mut self, table: &Table, filter: &mishkah_core::query::Filter) -> Result<Vec<Row>, StorageError>;
    /// Copies a row into a named history archive.
    fn archive_row(
        &mut self,
        archive: &str,
        table: &Table,
        key: &RecordKey,
        row: &Row,
        now: &str,
    ) -> Result<(), StorageError>;
    /// Forgets every counter, then sets the given ones (reset to seed).
    fn reset_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<(), StorageError>;
    /// Whether the transaction is still open (a database may end it by itself on some errors,
    /// such as a full disk).
    fn in_transaction(&self) -> bool;
    /// Rolls the whole transaction back: a write failed halfway, and nothing of the batch may be
    /// committed (the writer then fails every write of the batch).
    fn abandon(&mut self);
    /// Starts a savepoint: one mutation.
    fn savepoint(&mut self) -> Result<(), StorageError>;
    /// Keeps the mutation.
    fn release(&mut self) -> Result<(), StorageError>;
    /// Undoes the mutation (a failed mutation fails alone).
    fn rollback_to(&mut self) -> Result<(), StorageError>;
}
