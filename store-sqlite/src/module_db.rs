//! One branch+module database: opening, migrating, write transactions and reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use mishkah_core::query::Filter;
use mishkah_core::schema::Table;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{RecordKey, Row};
use mishkah_store::{
    parse_doc, Durability, Group, LoggedEvent, Measure, ModuleRead, ModuleWriter, OpenReport, PageQuery, StorageError,
    StoredPage, WriteTxn,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::checkpointer::Checkpointer;
use super::db;
use super::ddl::{create_internal, migrate_table, sql_table};
use super::events::{bounds, compact, events_after, logged_after};
use super::txn::{SqlCache, SqliteTxn};

/// The writer's connection to one module database. Only the module's writer thread holds it.
pub struct ModuleDb {
    conn: Connection,
    path: PathBuf,
    head: u64,
    sql: SqlCache,
    db_id: String,
    max_record_bytes: usize,
    /// The head as the checkpointer sees it (it checkpoints only after new commits).
    published_head: Arc<AtomicU64>,
    checkpointer: Option<Checkpointer>,
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), StorageError> {
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(db)?;
    conn.pragma_update(None, "foreign_keys", "OFF").map_err(db)?;
    // Keep hot pages in memory (16 MiB) instead of re-reading them for every write. Not more:
    // SQLite walks the whole page-cache hash at every commit.
    conn.pragma_update(None, "cache_size", -16_384).map_err(db)?;
    // Savepoint (per-mutation) journals in memory rather than in temp files.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(db)?;
    // Checkpoints run on a thread of their own (see `checkpoint`), not inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(db)?;
    // After a burst, the log shrinks back to this size when it starts over.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(db)?;
    Ok(())
}

impl ModuleDb {
    /// Opens (creating when absent) and migrates the database at `path` for `tables`.
    pub fn open(
        path: &Path,
        tables: &[&Table],
        durability: Durability,
    ) -> Result<(ModuleDb, OpenReport), StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path).map_err(db)?;
        configure(&conn, durability)?;
        // A transaction reads by filter too (`WriteTxn::rows_where`).
        super::filter_sql::register(&conn).map_err(db)?;
        create_internal(&conn)?;
        let mut report = OpenReport::default();
        let created_at: Option<String> = conn
            .query_row("SELECT value FROM mishkah_meta WHERE key = 'created_at'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if created_at.is_none() {
            report.created = true;
        }
        let tx = conn.unchecked_transaction().map_err(db)?;
        for table in tables {
            report.migrations.extend(migrate_table(&tx, table, false)?);
        }
        tx.commit().map_err(db)?;
        {
            let mut stmt = conn.prepare("SELECT name FROM mishkah_tables WHERE adhoc = 1").map_err(db)?;
            report.adhoc_tables =
                stmt.query_map([], |r| r.get(0)).map_err(db)?.collect::<Result<_, _>>().map_err(db)?;
        }
        let (_, head) = bounds(&conn)?;
        let fresh_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        conn.execute("INSERT OR IGNORE INTO mishkah_meta (key, value) VALUES ('db_id', ?1)", params![fresh_id])
            .map_err(db)?;
        let db_id: String =
            conn.query_row("SELECT value FROM mishkah_meta WHERE key = 'db_id'", [], |r| r.get(0)).map_err(db)?;
        let max_record_bytes = usize::MAX;
        let db = ModuleDb {
            conn,
            path: path.to_path_buf(),
            head,
            sql: SqlCache::new(),
            db_id,
            max_record_bytes,
            published_head: Arc::new(AtomicU64::new(head)),
            checkpointer: None,
        };
        Ok((db, report))
    }

    /// Starts the thread that checkpoints this database's WAL every `interval` after new commits.
    pub fn start_checkpointer(&mut self, site: (&str, &str), interval: std::time::Duration) {
        let path = self.path.clone();
        self.checkpointer = Some(Checkpointer::spawn(path, self.published_head.clone(), site, interval));
    }

    /// Whether the database at `path` exists and was initialized (seeded) on an earlier start:
    /// then it starts from itself alone, and no seed file is read.
    /// A connection that cannot change the database (for looking at a store `serve` may have open).
    pub fn open_read_only(path: &Path) -> Result<Connection, StorageError> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        Ok(conn)
    }

    pub fn initialized(path: &Path) -> Result<bool, StorageError> {
        if !path.is_file() {
            return Ok(false);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
        let has_meta: bool = conn
            .query_row(
                "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'mishkah_meta'",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        if !has_meta {
            return Ok(false);
        }
        let created: Option<String> = conn
            .query_row("SELECT value FROM mishkah_meta WHERE key = 'created_at'", [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(created.is_some())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Caps the database at `pages` pages (SQLite never goes below the current size). Writes that
    /// need more space are refused as if the disk were full: an operational limit, and how the
    /// tests exercise a full disk.
    pub fn limit_pages(&mut self, pages: u64) -> Result<u64, StorageError> {
        let max: i64 = self
            .conn
            .query_row(&format!("PRAGMA max_page_count = {}", pages.min(i64::MAX as u64)), [], |r| r.get(0))
            .map_err(db)?;
        Ok(max as u64)
    }

    /// Refuses to store a record whose JSON is longer than `bytes` (`record-too-large`).
    pub fn limit_record_bytes(&mut self, bytes: usize) {
        self.max_record_bytes = bytes;
    }
}

impl ModuleWriter for ModuleDb {
    fn head(&self) -> u64 {
        self.head
    }

    /// `BEGIN IMMEDIATE`: the write lock is taken now, not at the first write; the sequence then
    /// continues from the head as committed (another connection may have written: numbering from
    /// a cached head would repeat its sequences).
    fn begin(&mut self) -> Result<Box<dyn mishkah_store::Transaction + '_>, StorageError> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        match bounds(&self.conn) {
            Ok((_, head)) => self.head = head,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        let ModuleDb { conn, head, sql, db_id, max_record_bytes, .. } = self;
        let max_record_bytes = *max_record_bytes;
        let txn = SqliteTxn {
            conn,
            sql,
            db_id,
            head: *head,
            savepoint_head: *head,
            last_doc: None,
            last_read: None,
            max_record_bytes,
        };
        Ok(Box::new(Transaction { txn, committed_head: head, done: false }))
    }

    fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError> {
        self.conn
            .execute("INSERT OR IGNORE INTO mishkah_meta (key, value) VALUES ('created_at', ?1)", params![now])
            .map_err(db)?;
        Ok(())
    }

    fn enable_search(&mut self, table: &Table) -> Result<(), StorageError> {
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        let built = super::search::build_index(&tx, table)?;
        tx.commit().map_err(db)?;
        if let Some(what) = built {
            tracing::info!(table = %table.name, "{what}");
        }
        // The table's write statements change: they now return the rowid the index is keyed by.
        self.sql.remove(&table.name);
        Ok(())
    }

    fn add_adhoc_table(&mut self, table: &Table) -> Result<(), StorageError> {
        migrate_table(&self.conn, table, true)?;
        Ok(())
    }

    fn import_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<usize, StorageError> {
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        let mut n = 0;
        for (key, last) in counters {
            n += tx
                .execute(
                    "INSERT OR IGNORE INTO mishkah_counters (counter_key, last, updated_at) VALUES (?1, ?2, ?3)",
                    params![key, last, now],
                )
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        Ok(n)
    }

    fn compact(&mut self, through: u64) -> Result<usize, StorageError> {
        compact(&self.conn, through)
    }

    fn import_compaction(&mut self, through: u64) -> Result<(), StorageError> {
        self.conn
            .execute(
                "INSERT INTO mishkah_meta (key, value) VALUES ('compacted_through', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                params![through.to_string()],
            )
            .map_err(db)?;
        self.head = self.head.max(through);
        Ok(())
    }

    /// Tells the checkpointer of new commits, and checkpoints on the writer's own connection the
    /// frames the checkpointer could not reach because this writer kept appending: once every
    /// frame is in the database file, the next write starts the log over instead of extending it.
    fn between_batches(&mut self) {
        self.published_head.store(self.head, Ordering::Release);
        let Some(checkpointer) = &self.checkpointer else { return };
        if checkpointer.behind.swap(false, Ordering::AcqRel) {
            match passive_checkpoint(&self.conn) {
                Ok(progress) => tracing::debug!(?progress, "writer finished a checkpoint"),
                // Not fatal: the WAL keeps every committed write; the next round retries.
                Err(e) => tracing::warn!(path = %self.path.display(), error = %e, "checkpoint failed"),
            }
        }
    }
}

impl Drop for ModuleDb {
    fn drop(&mut self) {
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }
}

/// A read connection to a module database (WAL: reads never block the writer).
pub struct ModuleReader {
    pub(super) conn: Connection,
}

impl ModuleReader {
    /// Opens a read-only connection.
    pub fn open(path: &Path) -> Result<ModuleReader, StorageError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        super::filter_sql::register(&conn).map_err(db)?;
        Ok(ModuleReader { conn })
    }
}

impl ModuleRead for ModuleReader {
    fn snapshot(&self, f: &mut dyn FnMut(&dyn ModuleRead) -> Result<(), StorageError>) -> Result<(), StorageError> {
        self.conn.prepare_cached("BEGIN").map_err(db)?.execute([]).map_err(db)?;
        let out = f(self);
        // Ending a read transaction cannot lose anything.
        let _ = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        out
    }

    /// All rows of a table, in insertion order.
    fn rows(&self, table: &Table) -> Result<Vec<Row>, StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" ORDER BY rowid", sql_table(table));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let docs = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(db)?;
        let mut out = Vec::new();
        for doc in docs {
            out.push(parse_doc(&doc.map_err(db)?)?);
        }
        Ok(out)
    }

    /// Calls `f` with the stored JSON of every row of a table, in insertion order, one at a time:
    /// a snapshot streams a table without holding it.
    fn each_doc(&self, table: &Table, f: &mut dyn FnMut(&str) -> Result<(), StorageError>) -> Result<(), StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" ORDER BY rowid", sql_table(table));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let doc = row
                .get_ref(0)
                .map_err(db)?
                .as_str()
                .map_err(|e| StorageError::Corrupt(format!("stored record: {e}")))?;
            f(doc)?;
        }
        Ok(())
    }

    fn docs_by_key(
        &self,
        table: &Table,
        after: Option<&str>,
        limit: usize,
        f: &mut dyn FnMut(&str, &str) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let t = sql_table(table);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match after {
            Some(_) => format!(
                "SELECT mishkah_key, mishkah_doc FROM \"{t}\" WHERE mishkah_key > ?1 ORDER BY mishkah_key LIMIT ?2"
            ),
            None => format!("SELECT mishkah_key, mishkah_doc FROM \"{t}\" ORDER BY mishkah_key LIMIT ?1"),
        };
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let mut rows = match after {
            Some(key) => stmt.query(params![key, limit]),
            None => stmt.query(params![limit]),
        }
        .map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let text = |i| {
                row.get_ref(i).map_err(db)?.as_str().map_err(|e| StorageError::Corrupt(format!("stored record: {e}")))
            };
            f(text(0)?, text(1)?)?;
        }
        Ok(())
    }

    /// The same page as stored JSON documents, unparsed: what a route that passes rows through
    /// untouched sends as they are.
    fn page_docs(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let docs = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0)).map_err(db)?;
        docs.collect::<Result<_, _>>().map_err(db)
    }

    /// The first `keep` documents of the page copied straight from SQLite into one JSON array
    /// (no allocation per row), whether the page had more, and the last kept document (for a
    /// cursor).
    fn page_array(&self, table: &Table, q: &PageQuery, keep: usize) -> Result<StoredPage, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args)).map_err(db)?;
        let mut page = StoredPage { array: String::with_capacity(32 * 1024), count: 0, more: false, last: None };
        page.array.push('[');
        let mut last = (0, 0);
        while let Some(row) = rows.next().map_err(db)? {
            let doc =
                row.get_ref(0).map_err(db)?.as_str().map_err(|e| StorageError::Corrupt(format!("stored row: {e}")))?;
            if page.count == keep {
                page.more = true;
                break;
            }
            if page.count > 0 {
                page.array.push(',');
            }
            last = (page.array.len(), page.array.len() + doc.len());
            page.array.push_str(doc);
            page.count += 1;
        }
        if page.count > 0 {
            page.last = Some(page.array[last.0..last.1].to_owned());
        }
        page.array.push(']');
        Ok(page)
    }

    /// How SQLite would run [`ModuleReader::page`] (`EXPLAIN QUERY PLAN`, one line per step):
    /// what tests check index use with.
    fn page_plan(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).map_err(db)?;
        let steps = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3)).map_err(db)?;
        steps.collect::<Result<_, _>>().map_err(db)
    }
    /// Number of rows of a table that `filter` (variables bound) lets through.
    fn count_where(&self, table: &Table, filter: &Filter) -> Result<u64, StorageError> {
        let compiled = super::filter_sql::compile(&super::filter_sql::Sqlite, table, filter, 1);
        let sql = format!("SELECT COUNT(*) FROM \"{}\" WHERE {}", sql_table(table), compiled.sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        Ok(stmt.query_row(rusqlite::params_from_iter(compiled.params), |r| r.get::<_, i64>(0)).map_err(db)? as u64)
    }

    /// Number of rows of a table.
    fn count(&self, table: &Table) -> Result<u64, StorageError> {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", sql_table(table));
        Ok(self.conn.query_row(&sql, [], |r| r.get::<_, i64>(0)).map_err(db)? as u64)
    }

    /// One row.
    fn row(&self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" WHERE mishkah_key = ?1", sql_table(table));
        let doc: Option<String> = self
            .conn
            .prepare_cached(&sql)
            .map_err(db)?
            .query_row(params![key.0], |r| r.get(0))
            .optional()
            .map_err(db)?;
        doc.map(|d| parse_doc(&d)).transpose()
    }

    /// `(first retained sequence, last sequence)`.
    fn bounds(&self) -> Result<(u64, u64), StorageError> {
        bounds(&self.conn)
    }

    /// Events after `after`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError> {
        events_after(&self.conn, after, limit)
    }

    /// Events after `after` with everything the log keeps of them (the row before, source, meta, actor).
    fn logged_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError> {
        logged_after(&self.conn, after, limit)
    }

    /// A sequence counter's last value.
    fn counters(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT counter_key, last FROM mishkah_counters ORDER BY counter_key")
            .map_err(db)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    fn counter(&self, key: &str) -> Result<Option<i64>, StorageError> {
        self.conn
            .query_row("SELECT last FROM mishkah_counters WHERE counter_key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    /// History archives: `(archive, table, rows, archived_at)`.
    fn archives(&self) -> Result<Vec<(String, String, u64, String)>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT archive, tbl, COUNT(*), MAX(archived_at) FROM mishkah_archive GROUP BY archive, tbl ORDER BY MAX(archived_at), archive, tbl",
        ).map_err(db)?;
        let rows =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?))).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)
    }

    /// The rows of an archive: `(table, row)`.
    fn archived_rows(&self, archive: &str) -> Result<Vec<(String, Row)>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT tbl, doc FROM mishkah_archive WHERE archive = ?1 ORDER BY rowid")
            .map_err(db)?;
        let rows =
            stmt.query_map(params![archive], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (table, doc) = row.map_err(db)?;
            out.push((table, parse_doc(&doc)?));
        }
        Ok(out)
    }

    /// Whether any mutation id `scope` committed starts with `prefix` (a legacy publish's `trans_id:`).
    fn has_mutation_prefix(&self, scope: &str, prefix: &str) -> Result<bool, StorageError> {
        // A range on the unique index: ids starting with `prefix` sort in [prefix, prefix + U+10FFFF).
        let prefix = mishkah_store::mutation_key::stored(scope, prefix);
        let upper = format!("{prefix}\u{10FFFF}");
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM mishkah_events WHERE mutation_id >= ?1 AND mutation_id < ?2 LIMIT 1",
                params![prefix, upper],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        Ok(found.is_some())
    }

    /// The last event id, for the batch route's `lastAckId`.
    fn last_event_id(&self) -> Result<Option<String>, StorageError> {
        self.conn
            .query_row("SELECT event_id FROM mishkah_events ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    fn aggregate(
        &self,
        table: &Table,
        filter: &Filter,
        group_by: &[String],
        measures: &[(Measure, String)],
    ) -> Result<Vec<Group>, StorageError> {
        self.aggregate_groups(table, filter, group_by, measures)
    }

    fn search(
        &self,
        table: &Table,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(Row, f64)>, StorageError> {
        self.search_rows(table, query, filter, limit)
    }
}

/// An open write transaction.
struct Transaction<'a> {
    txn: SqliteTxn<'a>,
    committed_head: &'a mut u64,
    done: bool,
}

impl mishkah_store::Transaction for Transaction<'_> {
    fn ops(&mut self) -> &mut dyn WriteTxn {
        &mut self.txn
    }

    fn commit(mut self: Box<Self>) -> Result<(), StorageError> {
        self.done = true;
        match self.txn.conn.execute_batch("COMMIT") {
            Ok(()) => {
                *self.committed_head = self.txn.head;
                Ok(())
            }
            Err(e) => {
                // Best effort: SQLite may have rolled back already.
                let _ = self.txn.conn.execute_batch("ROLLBACK");
                Err(db(e))
            }
        }
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.txn.conn.execute_batch("ROLLBACK");
        }
    }
}

/// How far a checkpoint got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalProgress {
    /// Frames in the write-ahead log.
    pub frames: i64,
    /// Of those, frames now copied into the database file.
    pub checkpointed: i64,
}

/// Copies committed WAL pages into the database file (`PASSIVE`: never blocks the writer or
/// readers), on a connection of its own.
pub fn checkpoint(path: &Path) -> Result<WalProgress, StorageError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(db)?;
    passive_checkpoint(&conn)
}

fn passive_checkpoint(conn: &Connection) -> Result<WalProgress, StorageError> {
    let (frames, checkpointed) = conn
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
        .map_err(db)?;
    Ok(WalProgress { frames, checkpointed })
}

/// The SQL of a page and its parameters.
fn page_sql(table: &Table, q: &PageQuery) -> (String, Vec<rusqlite::types::Value>) {
    let t = sql_table(table);
    let (cmp, order) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
    let mut sql = format!("SELECT mishkah_doc FROM \"{t}\" WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(key) = &q.after_key {
        let missing = if q.descending { i64::MAX } else { -1 };
        sql.push_str(&format!(
            " AND rowid {cmp} COALESCE((SELECT rowid FROM \"{t}\" WHERE mishkah_key = ?), {missing})"
        ));
        args.push(key.clone().into());
    }
    if let Some(at) = &q.created_after {
        sql.push_str(" AND json_extract(mishkah_doc, '$.createdAt') > ?");
        args.push(at.clone().into());
    }
    if let Some(at) = &q.updated_after {
        sql.push_str(" AND json_extract(mishkah_doc, '$.updatedAt') > ?");
        args.push(at.clone().into());
    }
    if let Some(filter) = &q.filter {
        // Numbered after the parameters so far; the bare `?` below takes the next number.
        let compiled = super::filter_sql::compile(&super::filter_sql::Sqlite, table, filter, args.len() + 1);
        sql.push_str(&format!(" AND {}", compiled.sql));
        args.extend(compiled.params);
    }
    let sorts: Vec<(String, bool)> = q
        .sort
        .iter()
        .filter_map(|(field, desc)| super::filter_sql::sort_expr(table, field).map(|e| (e, *desc)))
        .collect();
    if let Some((values, key)) = &q.after {
        let compiled =
            super::filter_sql::after_cursor(&super::filter_sql::Sqlite, &t, &sorts, values, key, args.len() + 1);
        sql.push_str(&format!(" AND {}", compiled.sql));
        args.extend(compiled.params);
    }
    // The limit is ours (a number), written into the statement: bound as a parameter, SQLite's
    // planner reads it, so every new binding expired the cached statement and re-prepared it.
    let limit = q.limit.min(i64::MAX as usize);
    if sorts.is_empty() {
        sql.push_str(&format!(" ORDER BY rowid {order} LIMIT {limit}"));
    } else if q.sort.first().is_some_and(|(field, _)| !has_index_on(table, field)) {
        // No index gives this order, so every matching row is sorted: sort keys and rowids only,
        // then fetch the page's documents (sorting whole documents moved ~2.5x more bytes).
        let keys: Vec<String> = sorts.iter().enumerate().map(|(i, (e, _))| format!("{e} AS k{i}")).collect();
        let inner = sql.replacen("SELECT mishkah_doc FROM", &format!("SELECT rowid AS r, {} FROM", keys.join(", ")), 1);
        let outer: Vec<(String, bool)> = sorts.iter().enumerate().map(|(i, (_, d))| (format!("s.k{i}"), *d)).collect();
        let outer_order = super::filter_sql::order_by(&outer).replace("rowid", "s.r");
        sql = format!(
            "SELECT d.mishkah_doc FROM ({inner} ORDER BY {} LIMIT {limit}) AS s JOIN \"{t}\" AS d ON d.rowid = s.r \
             ORDER BY {outer_order}",
            super::filter_sql::order_by(&sorts)
        );
    } else {
        sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", super::filter_sql::order_by(&sorts)));
    }
    (sql, args)
}

/// Whether some index of the table holds `field`'s column (then it may give the order).
fn has_index_on(table: &Table, field: &str) -> bool {
    let Some(f) = table.field(field) else { return false };
    f.indexed || f.unique || table.indexes.iter().any(|i| i.fields.iter().any(|n| n == &f.name))
}
