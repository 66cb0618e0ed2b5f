//! Reading: consistent snapshots of one module, for any number of readers beside its writer.

use mishkah_core::query::Filter;
use mishkah_core::schema::Table;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{RecordKey, Row};

use crate::{parse_doc, Group, LoggedEvent, Measure, StorageError};

/// Where reads run: a pool of connections, or whatever the backend keeps.
pub trait ModuleReads: Send + Sync {
    /// Runs `f` on a reader, waiting for one if all are busy; fails when no reader can be had
    /// (the database is unreachable).
    fn with(&self, f: &mut dyn FnMut(&dyn ModuleRead)) -> Result<(), StorageError>;
}

/// Which page of a table to read.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Rows after the row with this key (insertion order).
    pub after_key: Option<String>,
    /// Rows created after (ISO-8601).
    pub created_after: Option<String>,
    /// Rows updated after (ISO-8601).
    pub updated_after: Option<String>,
    /// Newest first.
    pub descending: bool,
    /// At most this many.
    pub limit: usize,
    /// Only rows this filter (variables bound) lets through.
    pub filter: Option<Filter>,
    /// Sort keys `(field, descending)`, each one [`crate::layout::sortable`] accepts (others are
    /// ignored); none: insertion order.
    pub sort: Vec<(String, bool)>,
    /// Continue after this row of the sorted order: its sort values and key.
    pub after: Option<(Vec<serde_json::Value>, String)>,
}

/// A page as stored documents: see [`ModuleRead::page_array`].
#[derive(Debug)]
pub struct StoredPage {
    /// `[doc,doc,...]`.
    pub array: String,
    pub count: usize,
    pub more: bool,
    pub last: Option<String>,
}

/// Reads of one module. Inside [`ModuleRead::snapshot`] everything is read at one commit.
pub trait ModuleRead {
    /// Runs `f` inside one read transaction, so everything it reads is from the same commit
    /// (see [`consistent`] for a typed result).
    fn snapshot(&self, f: &mut dyn FnMut(&dyn ModuleRead) -> Result<(), StorageError>) -> Result<(), StorageError>;
    /// All rows of a table, in insertion order.
    fn rows(&self, table: &Table) -> Result<Vec<Row>, StorageError>;
    /// Calls `f` with the stored JSON of every row of a table, in insertion order, one at a time:
    /// a snapshot streams a table without holding it.
    fn each_doc(&self, table: &Table, f: &mut dyn FnMut(&str) -> Result<(), StorageError>) -> Result<(), StorageError>;
    /// Calls `f(key, doc)` for up to `limit` rows of a table whose stored keys come after `after`
    /// (all keys when `None`), in the keys' byte order: a walk in pages that rows deleted or
    /// inserted meanwhile never make repeat or skip a row that stays (a first sync's pages).
    fn docs_by_key(
        &self,
        table: &Table,
        after: Option<&str>,
        limit: usize,
        f: &mut dyn FnMut(&str, &str) -> Result<(), StorageError>,
    ) -> Result<(), StorageError>;
    /// A page of rows.
    fn page(&self, table: &Table, q: &PageQuery) -> Result<Vec<Row>, StorageError> {
        self.page_docs(table, q)?.iter().map(|doc| parse_doc(doc)).collect()
    }
    /// The same page as stored JSON documents, unparsed: what a route that passes rows through
    /// untouched sends as they are.
    fn page_docs(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError>;
    /// The first `keep` documents of the page copied into one JSON array, whether the page had
    /// more, and the last kept document (for a cursor).
    fn page_array(&self, table: &Table, q: &PageQuery, keep: usize) -> Result<StoredPage, StorageError>;
    /// How the database would run [`ModuleRead::page`], one line per step: what tests check
    /// index use with.
    fn page_plan(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError>;
    /// Number of rows of a table that `filter` (variables bound) lets through.
    fn count_where(&self, table: &Table, filter: &Filter) -> Result<u64, StorageError>;
    /// Number of rows of a table.
    fn count(&self, table: &Table) -> Result<u64, StorageError>;
    /// One row.
    fn row(&self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError>;
    /// Groups by `group_by` (fields [`crate::layout::sortable`] accepts; others are skipped), in
    /// the order of their values. Measures of unsuitable fields are skipped.
    fn aggregate(
        &self,
        table: &Table,
        filter: &Filter,
        group_by: &[String],
        measures: &[(Measure, String)],
    ) -> Result<Vec<Group>, StorageError>;
    /// Rows of `table` matching `query` (and `filter`, variables bound), best match first, each
    /// with its score (higher is better). The table's index must exist
    /// ([`crate::ModuleWriter::enable_search`]).
    fn search(
        &self,
        table: &Table,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(Row, f64)>, StorageError>;
    /// `(first retained sequence, last sequence)`.
    fn bounds(&self) -> Result<(u64, u64), StorageError>;
    /// Events after `after`, at most `limit`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError>;
    /// Events after `after` with everything the log keeps of them (the row before, source, meta, actor).
    fn logged_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError>;
    /// A sequence counter's last value.
    fn counter(&self, key: &str) -> Result<Option<i64>, StorageError>;
    /// Every sequence counter: `(key, last)`, by key.
    fn counters(&self) -> Result<Vec<(String, i64)>, StorageError>;
    /// History archives: `(archive, table, rows, archived_at)`.
    fn archives(&self) -> Result<Vec<(String, String, u64, String)>, StorageError>;
    /// The rows of an archive: `(table, row)`.
    fn archived_rows(&self, archive: &str) -> Result<Vec<(String, Row)>, StorageError>;
    /// Whether any mutation id `scope` committed starts with `prefix` (a legacy publish's `trans_id:`).
    fn has_mutation_prefix(&self, scope: &str, prefix: &str) -> Result<bool, StorageError>;
    /// The last event id, for the batch route's `lastAckId`.
    fn last_event_id(&self) -> Result<Option<String>, StorageError>;
}

/// Runs `f` on `reader` inside one read transaction and returns what it returns.
pub fn consistent<T>(
    reader: &dyn ModuleRead,
    f: impl FnOnce(&dyn ModuleRead) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let mut f = Some(f);
    let mut out = None;
    reader.snapshot(&mut |r| {
        if let Some(f) = f.take() {
            out = Some(f(r)?);
        }
        Ok(())
    })?;
    out.ok_or_else(|| StorageError::Corrupt("a read snapshot did not run its reads".into()))
}
