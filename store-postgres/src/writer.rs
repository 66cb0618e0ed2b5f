//! The writer of one module: its own connection, write transactions that lock the module's head
//! row, and maintenance.

use std::collections::{BTreeMap, HashMap, HashSet};

use mishkah_core::schema::Table;
use mishkah_store::{Durability, ModuleWriter, OpenOptions, StorageError, Transaction};

use crate::db;
use crate::ddl::{migrate_table, qualified};
use crate::txn::{PgTxn, Prepared, TableSql};

/// The writer's connection to one module. Only the module's writer thread holds it.
pub(crate) struct PgWriter {
    client: postgres::Client,
    schema: String,
    head: u64,
    sql: HashMap<String, TableSql>,
    prepared: Prepared,
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
        mut client: postgres::Client,
        schema: String,
        (node, branch, module): (&str, &str, &str),
        options: &OpenOptions,
    ) -> Result<PgWriter, StorageError> {
        if options.durability == Durability::Normal {
            // Survives a crash of this process, not of the database's host.
            client.batch_execute("SET synchronous_commit = off").map_err(db)?;
        }
        let head: i64 = client
            .query_one(&format!("SELECT head FROM {} WHERE id = 1", qualified(&schema, "mishkah_head")), &[])
            .map_err(db)?
            .get(0);
        Ok(PgWriter {
            searched: HashSet::new(),
            // Unknown: the first batch reads which tables keep an index.
            marks: Some(String::new()),
            client,
            schema,
            head: head as u64,
            sql: HashMap::new(),
            prepared: Prepared::new(),
            max_record_bytes: options.max_record_bytes,
            site: format!("{branch}/{module}"),
            notify: format!("{node}\u{1f}{branch}\u{1f}{module}\u{1f}"),
        })
    }
}

impl ModuleWriter for PgWriter {
    fn head(&self) -> u64 {
        self.head
    }

    /// Locks the module's head row: writers of the same module on other nodes wait here, and the
    /// sequence continues from the head as committed, whoever committed it.
    fn begin(&mut self) -> Result<Box<dyn Transaction + '_>, StorageError> {
        let PgWriter { client, schema, head, sql, prepared, searched, marks, max_record_bytes, notify, .. } = self;
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

    fn mark_initialized(&mut self, now: &str) -> Result<(), StorageError> {
        let id: i64 = self.schema[1..].parse().map_err(|_| StorageError::Corrupt(format!("schema {}", self.schema)))?;
        self.client
            .execute(
                "UPDATE mishkah.modules SET initialized_at = COALESCE(initialized_at, $2) WHERE id = $1",
                &[&id, &now],
            )
            .map_err(db)?;
        Ok(())
    }

    /// Builds the table's search index (`search.rs`); its writes keep it from now on.
    fn enable_search(&mut self, table: &Table) -> Result<(), StorageError> {
        if crate::search::enable(&mut self.client, &self.schema, table)? {
            tracing::info!(site = %self.site, table = %table.name, "search index built");
        }
        if !crate::search::search_fields_empty(table) && self.searched.insert(table.name.clone()) {
            // The table's write statements now set the index column too.
            self.sql.remove(&table.name);
        }
        Ok(())
    }

    fn add_adhoc_table(&mut self, table: &Table) -> Result<(), StorageError> {
        let mut tx = self.client.transaction().map_err(db)?;
        migrate_table(&mut tx, &self.schema, table, true)?;
        tx.commit().map_err(db)
    }

    fn import_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<usize, StorageError> {
        let mut tx = self.client.transaction().map_err(db)?;
        let sql = format!(
            "INSERT INTO {} (counter_key, last, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            qualified(&self.schema, "mishkah_counters")
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
        self.client.execute(&sql, &[&through]).map_err(db)?;
        self.head = self.head.max(through as u64);
        Ok(())
    }

    fn compact(&mut self, through: u64) -> Result<usize, StorageError> {
        let mut tx = self.client.transaction().map_err(db)?;
        let head: i64 = tx
            .query_one(
                &format!("SELECT head FROM {} WHERE id = 1 FOR UPDATE", qualified(&self.schema, "mishkah_head")),
                &[],
            )
            .map_err(db)?
            .get(0);
        let through = (through.min(i64::MAX as u64) as i64).min(head);
        let deleted = tx
            .execute(&format!("DELETE FROM {} WHERE seq <= $1", qualified(&self.schema, "mishkah_events")), &[&through])
            .map_err(db)?;
        tx.execute(
            &format!(
                "UPDATE {} SET compacted_through = GREATEST(compacted_through, $1) WHERE id = 1",
                qualified(&self.schema, "mishkah_head")
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
