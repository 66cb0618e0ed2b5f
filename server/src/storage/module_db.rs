//! One branch+module database: opening, migrating, write transactions and reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mishkah_core::schema::Table;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{RecordKey, Row};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::ddl::{create_internal, migrate_table, sql_table};
use super::events::{bounds, compact, events_after, logged_after, LoggedEvent};
use super::parse_doc;
use super::txn::{SqlCache, SqliteTxn};
use super::{StorageError, WriteTxn};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a process crash; the last commits may be lost on power loss.
    Normal,
}

/// What opening a database did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// The database was created now (seed it, import counters).
    pub created: bool,
    /// Additive migrations applied.
    pub migrations: Vec<String>,
    /// Ad-hoc tables (not in the schema) found in the database.
    pub adhoc_tables: Vec<String>,
}

/// The writer's connection to one module database. Only the module's writer thread holds it.
pub struct ModuleDb {
    conn: Connection,
    path: PathBuf,
    head: u64,
    sql: SqlCache,
    db_id: String,
    max_record_bytes: usize,
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), StorageError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Keep hot pages in memory (16 MiB) instead of re-reading them for every write. Not more:
    // SQLite walks the whole page-cache hash at every commit.
    conn.pragma_update(None, "cache_size", -16_384)?;
    // Savepoint (per-mutation) journals in memory rather than in temp files.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints run on a thread of their own (see `checkpoint`), not inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a burst, the log shrinks back to this size when it starts over.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
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
        let conn = Connection::open(path)?;
        configure(&conn, durability)?;
        // A transaction reads by filter too (`WriteTxn::rows_where`).
        super::filter_sql::register(&conn)?;
        create_internal(&conn)?;
        let mut report = OpenReport::default();
        let created_at: Option<String> =
            conn.query_row("SELECT value FROM mishkah_meta WHERE key = 'created_at'", [], |r| r.get(0)).optional()?;
        if created_at.is_none() {
            report.created = true;
        }
        let tx = conn.unchecked_transaction()?;
        for table in tables {
            report.migrations.extend(migrate_table(&tx, table, false)?);
        }
        tx.commit()?;
        {
            let mut stmt = conn.prepare("SELECT name FROM mishkah_tables WHERE adhoc = 1")?;
            report.adhoc_tables = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        }
        let (_, head) = bounds(&conn)?;
        let fresh_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        conn.execute("INSERT OR IGNORE INTO mishkah_meta (key, value) VALUES ('db_id', ?1)", params![fresh_id])?;
        let db_id: String = conn.query_row("SELECT value FROM mishkah_meta WHERE key = 'db_id'", [], |r| r.get(0))?;
        let max_record_bytes = usize::MAX;
        Ok((ModuleDb { conn, path: path.to_path_buf(), head, sql: SqlCache::new(), db_id, max_record_bytes }, report))
    }

    /// Whether the database at `path` exists and was initialized (seeded) on an earlier start:
    /// then it starts from itself alone, and no seed file is read.
    pub fn initialized(path: &Path) -> Result<bool, StorageError> {
        if !path.is_file() {
            return Ok(false);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let has_meta: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'mishkah_meta'",
            [],
            |r| r.get(0),
        )?;
        if !has_meta {
            return Ok(false);
        }
        let created: Option<String> =
            conn.query_row("SELECT value FROM mishkah_meta WHERE key = 'created_at'", [], |r| r.get(0)).optional()?;
        Ok(created.is_some())
    }

    /// Marks the database as initialized (after seeding), so a restart does not seed again.
    pub fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError> {
        self.conn.execute("INSERT OR IGNORE INTO mishkah_meta (key, value) VALUES ('created_at', ?1)", params![now])?;
        Ok(())
    }

    /// Builds `table`'s search index if it has none yet (then every write keeps it).
    pub fn enable_search(&mut self, table: &Table) -> Result<(), StorageError> {
        let tx = self.conn.unchecked_transaction()?;
        let built = super::search::build_index(&tx, table)?;
        tx.commit()?;
        if let Some(what) = built {
            tracing::info!(table = %table.name, "{what}");
        }
        // The table's write statements change: they now return the rowid the index is keyed by.
        self.sql.remove(&table.name);
        Ok(())
    }

    /// Creates a table for data the schema does not know (seed tables such as `add_ons`).
    pub fn add_adhoc_table(&mut self, table: &Table) -> Result<(), StorageError> {
        migrate_table(&self.conn, table, true)?;
        Ok(())
    }

    /// Sets counters that are not set yet (the original's `sequence-state.json` on first start).
    pub fn import_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<usize, StorageError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut n = 0;
        for (key, last) in counters {
            n += tx.execute(
                "INSERT OR IGNORE INTO mishkah_counters (counter_key, last, updated_at) VALUES (?1, ?2, ?3)",
                params![key, last, now],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// The last committed sequence.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checkpoints, on the writer's own connection, the frames a checkpoint on another thread
    /// could not reach because this writer kept appending. Once every frame is in the database
    /// file, the next write starts the log over instead of extending the file.
    pub fn finish_checkpoint(&mut self) -> Result<WalProgress, StorageError> {
        passive_checkpoint(&self.conn)
    }

    /// Starts the write transaction (`BEGIN IMMEDIATE`). Dropping it without
    /// [`Transaction::commit`] rolls everything back.
    pub fn begin(&mut self) -> Result<Transaction<'_>, StorageError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
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
        Ok(Transaction { txn, committed_head: head, done: false })
    }

    /// Caps the database at `pages` pages (SQLite never goes below the current size). Writes that
    /// need more space are refused as if the disk were full: an operational limit, and how the
    /// tests exercise a full disk.
    pub fn limit_pages(&mut self, pages: u64) -> Result<u64, StorageError> {
        let max: i64 =
            self.conn
                .query_row(&format!("PRAGMA max_page_count = {}", pages.min(i64::MAX as u64)), [], |r| r.get(0))?;
        Ok(max as u64)
    }

    /// Refuses to store a record whose JSON is longer than `bytes` (`record-too-large`).
    pub fn limit_record_bytes(&mut self, bytes: usize) {
        self.max_record_bytes = bytes;
    }

    /// Compacts the log through `through`.
    pub fn compact(&mut self, through: u64) -> Result<usize, StorageError> {
        compact(&self.conn, through)
    }
}

/// Which page of a table to read.
#[derive(Debug, Clone, Default)]
pub struct PageQuery {
    /// Rows after the row with this key.
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
    pub filter: Option<mishkah_core::query::Filter>,
    /// Sort keys `(field, descending)`, each one [`super::filter_sql::sort_expr`] accepts
    /// (others are ignored); none: insertion order.
    pub sort: Vec<(String, bool)>,
    /// Continue after this row of the sorted order: its sort values and key.
    pub after: Option<(Vec<serde_json::Value>, String)>,
}

/// A page as stored documents: see [`ModuleReader::page_array`].
#[derive(Debug)]
pub struct StoredPage {
    /// `[doc,doc,...]`.
    pub array: String,
    pub count: usize,
    pub more: bool,
    pub last: Option<String>,
}

/// A read connection to a module database (WAL: reads never block the writer).
pub struct ModuleReader {
    pub(super) conn: Connection,
}

impl ModuleReader {
    /// Opens a read-only connection.
    pub fn open(path: &Path) -> Result<ModuleReader, StorageError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        super::filter_sql::register(&conn)?;
        Ok(ModuleReader { conn })
    }

    /// Runs `f` inside one read transaction, so everything it reads is from the same commit.
    pub fn consistent<T>(&self, f: impl FnOnce(&ModuleReader) -> Result<T, StorageError>) -> Result<T, StorageError> {
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        let out = f(self);
        // Ending a read transaction cannot lose anything.
        let _ = self.conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
        out
    }

    /// All rows of a table, in insertion order.
    pub fn rows(&self, table: &Table) -> Result<Vec<Row>, StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" ORDER BY rowid", sql_table(table));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let docs = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for doc in docs {
            out.push(parse_doc(&doc?)?);
        }
        Ok(out)
    }

    /// Calls `f` with the stored JSON of every row of a table, in insertion order, one at a time:
    /// a snapshot streams a table without holding it.
    pub fn each_doc(
        &self,
        table: &Table,
        mut f: impl FnMut(&str) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" ORDER BY rowid", sql_table(table));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let doc = row.get_ref(0)?.as_str().map_err(|e| StorageError::Corrupt(format!("stored record: {e}")))?;
            f(doc)?;
        }
        Ok(())
    }

    /// A page of rows in insertion order (or reverse), after a key and/or a time.
    pub fn page(&self, table: &Table, q: &PageQuery) -> Result<Vec<Row>, StorageError> {
        self.page_docs(table, q)?.iter().map(|doc| parse_doc(doc)).collect()
    }

    /// The same page as stored JSON documents, unparsed: what a route that passes rows through
    /// untouched sends as they are.
    pub fn page_docs(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let docs = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(0))?;
        Ok(docs.collect::<Result<_, _>>()?)
    }

    /// The first `keep` documents of the page copied straight from SQLite into one JSON array
    /// (no allocation per row), whether the page had more, and the last kept document (for a
    /// cursor).
    pub fn page_array(&self, table: &Table, q: &PageQuery, keep: usize) -> Result<StoredPage, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        let mut page = StoredPage { array: String::with_capacity(32 * 1024), count: 0, more: false, last: None };
        page.array.push('[');
        let mut last = (0, 0);
        while let Some(row) = rows.next()? {
            let doc = row.get_ref(0)?.as_str().map_err(|e| StorageError::Corrupt(format!("stored row: {e}")))?;
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
    pub fn page_plan(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
        let (sql, args) = page_sql(table, q);
        let mut stmt = self.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let steps = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))?;
        Ok(steps.collect::<Result<_, _>>()?)
    }
    /// Number of rows of a table that `filter` (variables bound) lets through.
    pub fn count_where(&self, table: &Table, filter: &mishkah_core::query::Filter) -> Result<u64, StorageError> {
        let compiled = super::filter_sql::compile(&super::filter_sql::Sqlite, table, filter, 1);
        let sql = format!("SELECT COUNT(*) FROM \"{}\" WHERE {}", sql_table(table), compiled.sql);
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_row(rusqlite::params_from_iter(compiled.params), |r| r.get::<_, i64>(0))? as u64)
    }

    /// Number of rows of a table.
    pub fn count(&self, table: &Table) -> Result<u64, StorageError> {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", sql_table(table));
        Ok(self.conn.query_row(&sql, [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// One row.
    pub fn row(&self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        let sql = format!("SELECT mishkah_doc FROM \"{}\" WHERE mishkah_key = ?1", sql_table(table));
        let doc: Option<String> = self.conn.prepare_cached(&sql)?.query_row(params![key.0], |r| r.get(0)).optional()?;
        doc.map(|d| parse_doc(&d)).transpose()
    }

    /// `(first retained sequence, last sequence)`.
    pub fn bounds(&self) -> Result<(u64, u64), StorageError> {
        bounds(&self.conn)
    }

    /// Events after `after`.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError> {
        events_after(&self.conn, after, limit)
    }

    /// Events after `after` with everything the log keeps of them (the row before, source, meta, actor).
    pub fn logged_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError> {
        logged_after(&self.conn, after, limit)
    }

    /// A sequence counter's last value.
    pub fn counter(&self, key: &str) -> Result<Option<i64>, StorageError> {
        Ok(self
            .conn
            .query_row("SELECT last FROM mishkah_counters WHERE counter_key = ?1", params![key], |r| r.get(0))
            .optional()?)
    }

    /// History archives: `(archive, table, rows, archived_at)`.
    pub fn archives(&self) -> Result<Vec<(String, String, u64, String)>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT archive, tbl, COUNT(*), MAX(archived_at) FROM mishkah_archive GROUP BY archive, tbl ORDER BY MAX(archived_at), archive, tbl",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The rows of an archive: `(table, row)`.
    pub fn archived_rows(&self, archive: &str) -> Result<Vec<(String, Row)>, StorageError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT tbl, doc FROM mishkah_archive WHERE archive = ?1 ORDER BY rowid")?;
        let rows = stmt.query_map(params![archive], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (table, doc) = row?;
            out.push((table, parse_doc(&doc)?));
        }
        Ok(out)
    }

    /// Whether any mutation id `scope` committed starts with `prefix` (a legacy publish's `trans_id:`).
    pub fn has_mutation_prefix(&self, scope: &str, prefix: &str) -> Result<bool, StorageError> {
        // A range on the unique index: ids starting with `prefix` sort in [prefix, prefix + U+10FFFF).
        let prefix = super::mutation_key::stored(scope, prefix);
        let upper = format!("{prefix}\u{10FFFF}");
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM mishkah_events WHERE mutation_id >= ?1 AND mutation_id < ?2 LIMIT 1",
                params![prefix, upper],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The last event id, for the batch route's `lastAckId`.
    pub fn last_event_id(&self) -> Result<Option<String>, StorageError> {
        Ok(self
            .conn
            .query_row("SELECT event_id FROM mishkah_events ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .optional()?)
    }
}

/// An open write transaction.
pub struct Transaction<'a> {
    txn: SqliteTxn<'a>,
    committed_head: &'a mut u64,
    done: bool,
}

impl Transaction<'_> {
    /// The operations available inside.
    pub fn ops(&mut self) -> &mut dyn WriteTxn {
        &mut self.txn
    }

    /// Commits. On failure nothing of the transaction is kept.
    pub fn commit(mut self) -> Result<(), StorageError> {
        self.done = true;
        match self.txn.conn.execute_batch("COMMIT") {
            Ok(()) => {
                *self.committed_head = self.txn.head;
                Ok(())
            }
            Err(e) => {
                // Best effort: SQLite may have rolled back already.
                let _ = self.txn.conn.execute_batch("ROLLBACK");
                Err(e.into())
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
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    passive_checkpoint(&conn)
}

fn passive_checkpoint(conn: &Connection) -> Result<WalProgress, StorageError> {
    let (frames, checkpointed) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
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
