//! The writer of one module: write transactions that lock the module's head row, and
//! maintenance, on a connection of the write pool held for one batch at a time.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use mishkah_core::schema::Table;
use mishkah_store::{Durability, ModuleWriter, OpenOptions, StorageError, Transaction};

use crate::connect::Connector;
use crate::db;
use crate::ddl::{migrate_table, qualified};
use crate::pool::{Pool, Pooled};
use crate::txn::{PgTxn, Prepared, TableSql};

/// A connection of the write pool, with the statements prepared on it (for any module: their
/// SQL names the module's schema).
pub(crate) struct WriterConn {
    pub(crate) client: postgres::Client,
    prepared: Prepared,
    /// `SET synchronous_commit = off` is in force (a writer with [`Durability::Normal`]).
    relaxed: bool,
}

/// Statements prepared on one connection, beyond which the oldest modules' are prepared again.
const PREPARED_PER_CONNECTION: usize = 4096;

impl Pooled for WriterConn {
    fn open(connector: &Connector) -> Result<Self, StorageError> {
        Ok(WriterConn { client: connector.connect()?, prepared: Prepared::new(), relaxed: false })
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// The writer of one module. Only the module's writer thread holds it.
pub(crate) struct PgWriter {
    pool: Arc<Pool<WriterConn>>,
    /// Held from a batch's start to the end of the batch ([`ModuleWriter::between_batches`]).
    conn: Option<WriterConn>,
    relaxed: bool,
    schema: String,
    head: u64,
    sql: HashMap<String, TableSql>,
    /// The tables whose search index every write keeps (`search.rs`), and what
    /// `mishkah_search` said when they were read.
    searched: HashSet<String>,
    marks: Option<String>,
    max_record_bytes: usize,
    site: String,
    /// What this module's commit notifications start with (`node U+001F branch U+001F module U+001F`).
    notify: String,
}

impl PgWriter {
    pub(crate) fn new(
        pool: Arc<Pool<WriterConn>>,
        conn: WriterConn,
        schema: String,
        (node, branch, module): (&str, &str, &str),
        options: &OpenOptions,
    ) -> Result<PgWriter, StorageError> {
        let mut writer = PgWriter {
            pool,
            conn: Some(conn),
            // Survives a crash of this process, not of the database's host.
            relaxed: options.durability == Durability::Normal,
            searched: HashSet::new(),
            // Unknown: the first batch reads which tables keep an index.
            marks: Some(String::new()),
            head: 0,
            sql: HashMap::new(),
            max_record_bytes: options.max_record_bytes,
            site: format!("{branch}/{module}"),
            notify: format!("{node}\u{1f}{branch}\u{1f}{module}\u{1f}"),
            schema,
        };
        // Dropped on an error, the writer gives its connection back.
        let sql = format!("SELECT head FROM {} WHERE id = 1", qualified(&writer.schema, "mishkah_head"));
        let head: i64 = writer.client()?.query_one(&sql, &[]).map_err(db)?.get(0);
        writer.head = head as u64;
        // A module opened and never written holds no connection.
        writer.release();
        Ok(writer)
    }

    /// The connection this writer holds, taken from the pool when it holds none, set to this
    /// writer's durability.
    fn conn(&mut self) -> Result<&mut WriterConn, StorageError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            empty => empty.insert(self.pool.take()?),
        };
        if conn.relaxed != self.relaxed {
            let setting = if self.relaxed { "off" } else { "on" };
            conn.client.batch_execute(&format!("SET synchronous_commit = {setting}")).map_err(db)?;
            conn.relaxed = self.relaxed;
        }
        if conn.prepared.len() > PREPARED_PER_CONNECTION {
            conn.prepared.clear();
        }
        Ok(conn)
    }

    fn client(&mut self) -> Result<&mut postgres::Client, StorageError> {
        Ok(&mut self.conn()?.client)
    }

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        self.release();
    }
}

impl ModuleWriter for PgWriter {
    fn head(&self) -> u64 {
        self.head
    }

    /// Locks the module's head row: writers of the same module on other nodes wait here, and the
    /// sequence continues from the head as committed, whoever committed it.
    fn begin(&mut self) -> Result<Box<dyn Transaction + '_>, StorageError> {
        self.conn()?;
        let PgWriter { conn, schema, head, sql, searched, marks, max_record_bytes, notify, .. } = self;
        let WriterConn { client, prepared, .. } =
            conn.as_mut().ok_or_else(|| StorageError::Database("the writer holds no connection".into()))?;
        // With the lock, in the same round trip: which tables keep a search index now (another
        // node may have built or dropped one since this writer's last batch).
        let lock = format!(
            "SELECT head, db_id, (SELECT string_agg(tbl || ':' || fields, ',' ORDER BY tbl) FROM {}) \
             FROM {} WHERE id = 1 FOR UPDATE",
            qualified(schema, "mishkah_search"),
            qualified(schema, "mishkah_head")
        );
        if !prepared.contains_key(&lock) {
            let statement = client.prepare(&lock).map_err(db)?;
            prepared.insert(lock.clone(), statement);
        }
        let mut tx = client.transaction().map_err(db)?;
        let row = tx.query_one(&prepared[&lock], &[]).map_err(db)?;
        let current = row.get::<_, i64>(0) as u64;
        *head = current;
        let now_marked: Option<String> = row.get(2);
        if now_marked != *marks {
            *searched = crate::search::indexed(&mut tx, schema)?.into_iter().collect();
            // Every table's statements are built again, with or without the index column.
            sql.clear();
            *marks = now_marked;
        }
        let txn = PgTxn::new(tx, schema, (sql, prepared, searched), notify, row.get(1), current, *max_record_bytes);
        Ok(Box::new(PgTransaction { txn, committed_head: head }))
    }

    /// The connection goes back to the pool: a module with no writes holds none.
    fn between_batches(&mut self) {
        self.release();
    }

    fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError> {
        let id: i64 = self.schema[1..].parse().map_err(|_| StorageError::Corrupt(format!("schema {}", self.schema)))?;
        self.client()?
            .execute(
                "UPDATE mishkah.modules SET initialized_at = COALESCE(initialized_at, $2) WHERE id = $1",
                &[&id, &now],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Builds the table's search index (`search.rs`); its writes keep it from now on.
    fn enable_search(&mut self, table: &Table) -> Result<(), StorageError> {
        let schema = self.schema.clone();
        if crate::search::enable(self.client()?, &schema, table)? {
            tracing::info!(site = %self.site, table = %table.name, "search index built");
        }
        if !crate::search::search_fields_empty(table) && self.searched.insert(table.name.clone()) {
            // The table's write statements now set the index column too.
            self.sql.remove(&table.name);
        }
        Ok(())
    }

    fn add_adhoc_table(&mut self, table: &Table) -> Result<(), StorageError> {
        let schema = self.schema.clone();
        let mut tx = self.client()?.transaction().map_err(db)?;
        migrate_table(&mut tx, &schema, table, true)?;
        tx.commit().map_err(db)
    }

    fn import_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<usize, StorageError> {
        let schema = self.schema.clone();
        let mut tx = self.client()?.transaction().map_err(db)?;
        let sql = format!(
            "INSERT INTO {} (counter_key, last, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            qualified(&schema, "mishkah_counters")
        );
        let mut n = 0;
        for (key, last) in counters {
            n += tx.execute(&sql, &[key, last, &now]).map_err(db)? as usize;
        }
        tx.commit().map_err(db)?;
        Ok(n)
    }

    fn import_compaction(&mut self, through: u64) -> Result<(), StorageError> {
        let through = through.min(i64::MAX as u64) as i64;
        let sql = format!(
            "UPDATE {} SET compacted_through = GREATEST(compacted_through, $1), head = GREATEST(head, $1) WHERE id = 1",
            qualified(&self.schema, "mishkah_head")
        );
        self.client()?.execute(&sql, &[&through]).map_err(db)?;
        self.head = self.head.max(through as u64);
        Ok(())
    }

    fn compact(&mut self, through: u64) -> Result<usize, StorageError> {
        let schema = self.schema.clone();
        let mut tx = self.client()?.transaction().map_err(db)?;
        let head: i64 = tx
            .query_one(&format!("SELECT head FROM {} WHERE id = 1 FOR UPDATE", qualified(&schema, "mishkah_head")), &[])
            .map_err(db)?
            .get(0);
        let through = (through.min(i64::MAX as u64) as i64).min(head);
        let deleted = tx
            .execute(&format!("DELETE FROM {} WHERE seq <= $1", qualified(&schema, "mishkah_events")), &[&through])
            .map_err(db)?;
        tx.execute(
            &format!(
                "UPDATE {} SET compacted_through = GREATEST(compacted_through, $1) WHERE id = 1",
                qualified(&schema, "mishkah_head")
            ),
            &[&through],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        tracing::debug!(module = %self.site, through, deleted, "compacted");
        Ok(deleted as usize)
    }
}

/// An open write transaction; dropped without a commit, PostgreSQL rolls it back.
struct PgTransaction<'a> {
    txn: PgTxn<'a>,
    committed_head: &'a mut u64,
}

impl Transaction for PgTransaction<'_> {
    fn ops(&mut self) -> &mut dyn mishkah_store::WriteTxn {
        &mut self.txn
    }

    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let PgTransaction { txn, committed_head } = *self;
        let head = txn.commit()?;
        *committed_head = head;
        Ok(())
    }
}
