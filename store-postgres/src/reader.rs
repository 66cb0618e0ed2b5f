//! Reads: `REPEATABLE READ READ ONLY` transactions on a pool of connections every module shares.

use std::cell::RefCell;
use std::sync::Arc;

use mishkah_core::query::Filter;
use mishkah_core::schema::Table;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Row};
use mishkah_store::layout::table_name;
use mishkah_store::{
    mutation_key, parse_doc, Before, Group, LoggedEvent, LoggedMutation, Measure, ModuleRead, ModuleReads, PageQuery,
    StorageError, StoredPage,
};
use serde_json::Value;

use crate::db;
use crate::ddl::qualified;
use crate::evaluate;
use crate::pool::Pool;

/// The read pool: what reads and the backend's own queries ask of the database.
impl Pool<postgres::Client> {
    /// Runs `f` on one of the pool's connections.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut client = self.take()?;
        let out = f(&mut client);
        self.give_back(client);
        out
    }

    /// Whether `mishkah.modules` lists a module of `branch`.
    pub(crate) fn has_branch(&self, branch: &str) -> Result<bool, StorageError> {
        self.with(|client| {
            client
                .query_one(
                    "SELECT to_regclass('mishkah.modules') IS NOT NULL
                        AND EXISTS (SELECT 1 FROM mishkah.modules WHERE branch = $1)",
                    &[&branch],
                )
                .map(|r| r.get::<_, Option<bool>>(0).unwrap_or(false))
                .map_err(db)
        })
    }

    /// The branches `mishkah.modules` lists.
    pub(crate) fn branches(&self) -> Result<Vec<String>, StorageError> {
        self.with(|client| {
            let exists: bool =
                client.query_one("SELECT to_regclass('mishkah.modules') IS NOT NULL", &[]).map_err(db)?.get(0);
            if !exists {
                return Ok(Vec::new());
            }
            let rows = client.query("SELECT DISTINCT branch FROM mishkah.modules ORDER BY branch", &[]).map_err(db)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// `SELECT 1` on one of the pool's connections.
    pub(crate) fn ping(&self) -> Result<(), StorageError> {
        self.with(|client| client.simple_query("SELECT 1").map(|_| ()).map_err(db))
    }

    pub(crate) fn folds_unicode(&self, client: &mut postgres::Client) -> Result<bool, StorageError> {
        if let Some(&known) = self.unicode_lower.get() {
            return Ok(known);
        }
        let found: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = $1)",
                &[&crate::filter::UNICODE_LOWER],
            )
            .map_err(db)?
            .get(0);
        if !found {
            tracing::warn!("PostgreSQL without ICU: `~` filters are decided row by row, not in SQL");
        }
        Ok(*self.unicode_lower.get_or_init(|| found))
    }
}

/// One module's readers: the shared pool, reading the module's schema.
pub(crate) struct PgReads {
    pub(crate) pool: Arc<Pool<postgres::Client>>,
    pub(crate) schema: String,
}

impl PgReads {
    /// A reader of this module on a connection of the pool, given back after `f`.
    fn reading<T>(&self, f: impl FnOnce(&PgReader<'_>) -> T) -> Result<T, StorageError> {
        let mut client = self.pool.take()?;
        let unicode_lower = match self.pool.folds_unicode(&mut client) {
            Ok(known) => known,
            Err(e) => {
                self.pool.give_back(client);
                return Err(e);
            }
        };
        let reader = PgReader {
            client: RefCell::new(client),
            schema: &self.schema,
            snapshot: RefCell::new(false),
            unicode_lower,
        };
        let out = f(&reader);
        self.pool.give_back(reader.client.into_inner());
        Ok(out)
    }

    /// `f` on a reader of this module, as the crate's own functions see it.
    #[cfg(test)]
    pub(crate) fn with_pg<T>(&self, f: impl FnOnce(&PgReader<'_>) -> T) -> Result<T, StorageError> {
        self.reading(f)
    }
}

impl ModuleReads for PgReads {
    fn with(&self, f: &mut dyn FnMut(&dyn ModuleRead)) -> Result<(), StorageError> {
        self.reading(|reader| f(reader))
    }
}

pub(crate) struct PgReader<'s> {
    client: RefCell<postgres::Client>,
    schema: &'s str,
    snapshot: RefCell<bool>,
    /// `~` can be compiled ([`crate::filter::narrow`]).
    pub(crate) unicode_lower: bool,
}

/// The columns [`event_of`] and [`logged_of`] read, in order.
pub(crate) const LOGGED_COLUMNS: &str =
    "seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, prev_row, source, meta, actor, sent_table, mutation_digest, txn";

/// An event from a row of [`LOGGED_COLUMNS`].
pub(crate) fn event_of(r: &postgres::Row) -> Result<ChangeEvent, StorageError> {
    let kind = mishkah_store::action_kind(r.get(4))?;
    let row = r.get::<_, Option<String>>(7).map(|d| parse_doc(&d)).transpose()?;
    Ok(ChangeEvent {
        sequence: r.get::<_, i64>(0) as u64,
        event_id: r.get(1),
        mutation_id: r.get::<_, Option<String>>(2).map(|stored| mutation_key::shown(&stored).to_owned()),
        created_at: r.get(8),
        transaction_id: r.get(15),
        change: Change {
            table: r.get(3),
            key: RecordKey(r.get(5)),
            kind,
            row,
            version: r.get(6),
            coerced: Vec::new(),
            unknown_fields: Vec::new(),
            tolerated: Vec::new(),
        },
    })
}

fn logged_of(r: &postgres::Row) -> Result<LoggedEvent, StorageError> {
    let event = event_of(r)?;
    let before = match (event.change.kind, r.get::<_, Option<String>>(9)) {
        (ChangeKind::Insert, _) => Before::Absent,
        (_, Some(doc)) => Before::Row(parse_doc(&doc)?),
        (_, None) => Before::NotKept,
    };
    let meta = match r.get::<_, Option<String>>(11) {
        Some(m) => serde_json::from_str(&m).map_err(|e| StorageError::Corrupt(format!("stored meta: {e}")))?,
        None => Value::Null,
    };
    let mutation = r.get::<_, Option<String>>(2).map(|stored| LoggedMutation { stored, digest: r.get(14) });
    Ok(LoggedEvent { event, before, source: r.get(10), meta, actor: r.get(12), table_as_sent: r.get(13), mutation })
}

impl PgReader<'_> {
    fn q(&self, name: &str) -> String {
        qualified(self.schema, name)
    }

    fn t(&self, table: &Table) -> String {
        qualified(self.schema, &table_name(table))
    }

    /// The stored table of `table`, schema-qualified.
    pub(crate) fn table(&self, table: &Table) -> String {
        self.t(table)
    }

    /// Whether `table` has a current search index (`search.rs`).
    pub(crate) fn search_indexed(&self, table: &Table) -> Result<bool, StorageError> {
        let sql = format!("SELECT fields FROM {} WHERE tbl = $1", self.q("mishkah_search"));
        let found = self.query(&sql, &[&table.name])?;
        Ok(found.first().is_some_and(|r| r.get::<_, String>(0) == crate::search::signature(table)))
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StorageError> {
        self.client.borrow_mut().query(sql, params).map_err(db)
    }

    /// Every stored document of `table`, in insertion order.
    pub(crate) fn docs(&self, table: &Table) -> Result<Vec<String>, StorageError> {
        let rows = self.query(&format!("SELECT mishkah_doc FROM {} ORDER BY mishkah_row", self.t(table)), &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

impl ModuleRead for PgReader<'_> {
    fn snapshot(&self, f: &mut dyn FnMut(&dyn ModuleRead) -> Result<(), StorageError>) -> Result<(), StorageError> {
        if *self.snapshot.borrow() {
            return f(self);
        }
        self.client.borrow_mut().batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").map_err(db)?;
        *self.snapshot.borrow_mut() = true;
        let out = f(self);
        *self.snapshot.borrow_mut() = false;
        // Ending a read-only transaction cannot lose anything.
        let _ = self.client.borrow_mut().batch_execute("COMMIT");
        out
    }

    fn rows(&self, table: &Table) -> Result<Vec<Row>, StorageError> {
        self.docs(table)?.iter().map(|d| parse_doc(d)).collect()
    }

    fn each_doc(&self, table: &Table, f: &mut dyn FnMut(&str) -> Result<(), StorageError>) -> Result<(), StorageError> {
        use postgres::fallible_iterator::FallibleIterator;
        let sql = format!("SELECT mishkah_doc FROM {} ORDER BY mishkah_row", self.t(table));
        let mut client = self.client.borrow_mut();
        let no_params: [&str; 0] = [];
        let mut rows = client.query_raw(&sql, no_params).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            f(row.get(0))?;
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
        use postgres::fallible_iterator::FallibleIterator;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The key column is `COLLATE "C"`: byte order, as SQLite's, and its primary-key index.
        let sql = format!(
            "SELECT mishkah_key, mishkah_doc FROM {} WHERE $1::text IS NULL OR mishkah_key > $1 ORDER BY mishkah_key LIMIT $2",
            self.t(table)
        );
        let mut client = self.client.borrow_mut();
        let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&after, &limit];
        let mut rows = client.query_raw(&sql, params).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            f(row.get(0), row.get(1))?;
        }
        Ok(())
    }

    fn page_docs(&self, table: &Table, q: &PageQuery) -> Result<Vec<String>, StorageError> {
        evaluate::page(self, table, q)
    }

    fn page_array(&self, table: &Table, q: &PageQuery, keep: usize) -> Result<StoredPage, StorageError> {
        let docs = evaluate::page(self, table, q)?;
        let more = docs.len() > keep;
        let kept = &docs[..docs.len().min(keep)];
        Ok(StoredPage { array: format!("[{}]", kept.join(",")), count: kept.len(), more, last: kept.last().cloned() })
    }

    fn page_plan(&self, table: &Table, _q: &PageQuery) -> Result<Vec<String>, StorageError> {
        let rows =
            self.query(&format!("EXPLAIN SELECT mishkah_doc FROM {} ORDER BY mishkah_row", self.t(table)), &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn count_where(&self, table: &Table, filter: &Filter) -> Result<u64, StorageError> {
        evaluate::count(self, table, filter)
    }

    fn count(&self, table: &Table) -> Result<u64, StorageError> {
        let rows = self.query(&format!("SELECT COUNT(*) FROM {}", self.t(table)), &[])?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    fn row(&self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        if key.0.contains('\0') {
            // PostgreSQL's text holds no NUL: no stored key has one.
            return Ok(None);
        }
        let rows =
            self.query(&format!("SELECT mishkah_doc FROM {} WHERE mishkah_key = $1", self.t(table)), &[&key.0])?;
        rows.first().map(|r| parse_doc(r.get(0))).transpose()
    }

    fn aggregate(
        &self,
        table: &Table,
        filter: &Filter,
        group_by: &[String],
        measures: &[(Measure, String)],
    ) -> Result<Vec<Group>, StorageError> {
        evaluate::aggregate(self, table, filter, group_by, measures)
    }

    fn search(
        &self,
        table: &Table,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(Row, f64)>, StorageError> {
        evaluate::search(self, table, query, filter, limit)
    }

    fn bounds(&self) -> Result<(u64, u64), StorageError> {
        let rows =
            self.query(&format!("SELECT compacted_through, head FROM {} WHERE id = 1", self.q("mishkah_head")), &[])?;
        let row = rows.first().ok_or_else(|| StorageError::Corrupt("the module has no head row".into()))?;
        Ok((row.get::<_, i64>(0) as u64 + 1, row.get::<_, i64>(1) as u64))
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError> {
        Ok(self.logged_after(after, limit)?.into_iter().map(|l| l.event).collect())
    }

    fn logged_after(&self, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError> {
        let sql =
            format!("SELECT {LOGGED_COLUMNS} FROM {} WHERE seq > $1 ORDER BY seq LIMIT $2", self.q("mishkah_events"));
        let (after, limit) = (after.min(i64::MAX as u64) as i64, limit.min(i64::MAX as usize) as i64);
        self.query(&sql, &[&after, &limit])?.iter().map(logged_of).collect()
    }

    fn counters(&self) -> Result<Vec<(String, i64)>, StorageError> {
        let sql =
            format!("SELECT counter_key, last FROM {} ORDER BY counter_key COLLATE \"C\"", self.q("mishkah_counters"));
        Ok(self.query(&sql, &[])?.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn counter(&self, key: &str) -> Result<Option<i64>, StorageError> {
        let rows =
            self.query(&format!("SELECT last FROM {} WHERE counter_key = $1", self.q("mishkah_counters")), &[&key])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn archives(&self) -> Result<Vec<(String, String, u64, String)>, StorageError> {
        let sql = format!(
            "SELECT archive, tbl, COUNT(*), MAX(archived_at) FROM {} GROUP BY archive, tbl ORDER BY MAX(archived_at), archive, tbl",
            self.q("mishkah_archive")
        );
        Ok(self.query(&sql, &[])?.iter().map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64, r.get(3))).collect())
    }

    fn archived_rows(&self, archive: &str) -> Result<Vec<(String, Row)>, StorageError> {
        let sql = format!("SELECT tbl, doc FROM {} WHERE archive = $1 ORDER BY n", self.q("mishkah_archive"));
        self.query(&sql, &[&archive])?.iter().map(|r| Ok((r.get(0), parse_doc(r.get(1))?))).collect()
    }

    fn has_mutation_prefix(&self, scope: &str, prefix: &str) -> Result<bool, StorageError> {
        let prefix = mutation_key::stored(scope, prefix);
        let upper = format!("{prefix}\u{10FFFF}");
        let sql =
            format!("SELECT 1 FROM {} WHERE mutation_id >= $1 AND mutation_id < $2 LIMIT 1", self.q("mishkah_events"));
        Ok(!self.query(&sql, &[&prefix, &upper])?.is_empty())
    }

    fn last_event_id(&self) -> Result<Option<String>, StorageError> {
        let sql = format!("SELECT event_id FROM {} ORDER BY seq DESC LIMIT 1", self.q("mishkah_events"));
        Ok(self.query(&sql, &[])?.first().map(|r| r.get(0)))
    }
}
