//! One branch+module database: opening, migrating, write transactions and reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mishkah_core::schema::Table;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{RecordKey, Row};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::ddl::{create_internal, migrate_table, sql_table};
use super::events::{bounds, compact, events_after};
use super::txn::{parse_doc, SqliteTxn};
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
    Ok(())
}

impl ModuleDb {
    /// Opens (creating when absent) and migrates the database at `path` for `tables`.
    pub fn open(path: &Path, tables: &[&Table], durability: Durability) -> Result<(ModuleDb, OpenReport), StorageError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        configure(&conn, durability)?;
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
        Ok((ModuleDb { conn, path: path.to_path_buf(), head }, report))
    }

    /// Marks the database as initialized (after seeding), so a restart does not seed again.
    pub fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError> {
        self.conn.execute("INSERT OR IGNORE INTO mishkah_meta (key, value) VALUES ('created_at', ?1)", params![now])?;
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

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits. If the commit fails, nothing of
    /// `f` is kept and the error is returned: the caller must fail every write of the batch.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut dyn WriteTxn) -> T) -> Result<T, StorageError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut txn = SqliteTxn { conn: &self.conn, head: self.head, savepoint_head: self.head };
        let out = f(&mut txn);
        let head = txn.head;
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.head = head;
                Ok(out)
            }
            Err(e) => {
                // Best effort: the transaction may already be gone.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        }
    }

    /// Compacts the log through `through`.
    pub fn compact(&mut self, through: u64) -> Result<usize, StorageError> {
        compact(&self.conn, through)
    }
}

/// A read connection to a module database (WAL: reads never block the writer).
pub struct ModuleReader {
    conn: Connection,
}

impl ModuleReader {
    /// Opens a read-only connection.
    pub fn open(path: &Path) -> Result<ModuleReader, StorageError> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(ModuleReader { conn })
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

    /// A sequence counter's last value.
    pub fn counter(&self, key: &str) -> Result<Option<i64>, StorageError> {
        Ok(self
            .conn
            .query_row("SELECT last FROM mishkah_counters WHERE counter_key = ?1", params![key], |r| r.get(0))
            .optional()?)
    }

    /// The last event id, for the batch route's `lastAckId`.
    pub fn last_event_id(&self) -> Result<Option<String>, StorageError> {
        Ok(self.conn.query_row("SELECT event_id FROM mishkah_events ORDER BY seq DESC LIMIT 1", [], |r| r.get(0)).optional()?)
    }
}
