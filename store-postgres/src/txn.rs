//! [`WriteTxn`] on a PostgreSQL transaction that holds its module's head row.

use std::collections::{BTreeMap, HashMap, HashSet};

use mishkah_core::query::{Bindings, Filter};
use mishkah_core::schema::{FieldType, Table};
use mishkah_core::sequence::SequenceRule;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, RecordKey, Row};
use mishkah_store::layout::{table_name, typed_fields};
use mishkah_store::{
    held_texts, mutation_key, parse_doc, EventRow, NewEvent, Prefetch, Replay, StorageError, WriteTxn,
};
use postgres::error::SqlState;
use postgres::types::ToSql;
use serde_json::Value;

use crate::db;
use crate::ddl::{has_unique, qualified};
use crate::pending::Pending;
use crate::reader::{event_of, LOGGED_COLUMNS};
use crate::search;
use crate::staged::{StagedTable, Write};

/// The SQL of one table's row operations, built once per table.
pub(crate) struct TableSql {
    select_doc: String,
    /// The rows of many keys at once (`$1::text[]`): a batch's prefetch.
    select_docs: String,
    upsert: String,
    delete: String,
    all_rows: String,
    /// Staged rows: every key at once (`$1::text[]`), then every row from arrays.
    delete_many: String,
    upsert_many: String,
    /// A write may be refused by a unique index: it runs in a savepoint of its own.
    guarded: bool,
    /// `(column, field, type)` of the typed columns, in the upsert's parameter order.
    columns: Vec<(String, String, FieldType)>,
    /// The table's search index is kept: its words are the upsert's last parameter.
    searched: bool,
}

impl TableSql {
    fn new(schema: &str, table: &Table, searched: bool) -> TableSql {
        let t = qualified(schema, &table_name(table));
        let columns = typed_fields(table);
        let mut upsert = format!("INSERT INTO {t} (mishkah_key, mishkah_version, mishkah_doc, mishkah_misfits");
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\""));
        }
        if searched {
            upsert.push_str(", mishkah_search");
        }
        upsert.push_str(") VALUES ($1, $2, $3, $4");
        for (i, (_, _, ty)) in columns.iter().enumerate() {
            // Values travel as text and are cast here: the database, not a driver, reads numbers.
            let cast = match ty {
                FieldType::Integer | FieldType::Decimal => "::text::numeric",
                FieldType::Boolean => "::text::boolean",
                _ => "::text",
            };
            upsert.push_str(&format!(", ${}{cast}", i + 5));
        }
        if searched {
            upsert.push_str(&format!(", {}(${}::text, ' '))", search::TSVECTOR_OF, columns.len() + 5));
        }
        upsert.push_str(
            ") ON CONFLICT (mishkah_key) DO UPDATE SET mishkah_version = excluded.mishkah_version, \
             mishkah_doc = excluded.mishkah_doc, mishkah_misfits = excluded.mishkah_misfits",
        );
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\" = excluded.\"{c}\""));
        }
        if searched {
            upsert.push_str(", mishkah_search = excluded.mishkah_search");
        }
        let mut arrays = vec!["$1::text[]".to_owned(), "$2::bigint[]".into(), "$3::text[]".into(), "$4::text[]".into()];
        let mut names = vec!["k".to_owned(), "v".into(), "d".into(), "m".into()];
        let mut picks = vec!["k".to_owned(), "v".into(), "d".into(), "m".into()];
        for (i, (_, _, ty)) in columns.iter().enumerate() {
            arrays.push(format!("${}::text[]", i + 5));
            names.push(format!("c{i}"));
            picks.push(match ty {
                FieldType::Integer | FieldType::Decimal => format!("c{i}::numeric"),
                FieldType::Boolean => format!("c{i}::boolean"),
                _ => format!("c{i}"),
            });
        }
        if searched {
            arrays.push(format!("${}::text[]", columns.len() + 5));
            names.push("s".into());
            picks.push(format!("{}(s, ' '))", search::TSVECTOR_OF));
        }
        let target = upsert[..upsert.find(" VALUES").unwrap_or(upsert.len())].to_owned();
        let conflict = &upsert[upsert.find(" ON CONFLICT").unwrap_or(upsert.len())..];
        let upsert_many = format!(
            "{target} SELECT {} FROM unnest({}) AS u({}){conflict}",
            picks.join(", "),
            arrays.join(", "),
            names.join(", ")
        );
        TableSql {
            delete_many: format!("DELETE FROM {t} WHERE mishkah_key = ANY($1::text[])"),
            upsert_many,
            select_doc: format!("SELECT mishkah_doc FROM {t} WHERE mishkah_key = $1"),
            select_docs: format!("SELECT mishkah_key, mishkah_doc FROM {t} WHERE mishkah_key = ANY($1::text[])"),
            delete: format!("DELETE FROM {t} WHERE mishkah_key = $1"),
            all_rows: format!("SELECT mishkah_key, mishkah_doc FROM {t} ORDER BY mishkah_row"),
            upsert,
            guarded: has_unique(table),
            columns,
            searched,
        }
    }
}

/// What a typed column holds for a value: its text when its kind is the field's; else nothing,
/// and the column is named among the row's misfits (a value stored as sent, which only the
/// document holds).
fn typed_text(ty: FieldType, v: &Value) -> Result<Option<String>, ()> {
    match (ty, v) {
        (_, Value::Null) => Ok(None),
        (FieldType::Json, Value::String(s)) if s.contains('\0') => Err(()),
        (FieldType::Json, Value::String(s)) => Ok(Some(s.clone())),
        (FieldType::Json, other) => Ok(Some(other.to_string())),
        // PostgreSQL's text holds no NUL: such a string is the document's alone, as a value of
        // another kind is (filters on its column then leave it to the evaluator).
        (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(s)) if s.contains('\0') => Err(()),
        (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(s)) => Ok(Some(s.clone())),
        (FieldType::Integer | FieldType::Decimal, Value::Number(n)) => Ok(Some(n.to_string())),
        (FieldType::Boolean, Value::Bool(b)) => Ok(Some(b.to_string())),
        _ => Err(()),
    }
}

/// Statements prepared on the writer's connection, by their SQL: a statement sent as text is
/// parsed on every execution, one more round trip each.
pub(crate) type Prepared = HashMap<String, postgres::Statement>;

pub(crate) struct PgTxn<'a> {
    tx: Option<postgres::Transaction<'a>>,
    schema: &'a str,
    sql: &'a mut HashMap<String, TableSql>,
    prepared: &'a mut Prepared,
    searched: &'a HashSet<String>,
    pending: Pending,
    savepoint_pending: usize,
    /// Row writes not sent yet, by table name (see `staged.rs`).
    staged: HashMap<String, StagedTable>,
    /// Rows read ahead for the batch (`None`: absent), by table and key. An entry goes when it is
    /// read or its row is written: after that the database or the stage answers.
    fetched: HashMap<String, HashMap<String, Option<String>>>,
    /// Logged mutations read ahead for the batch, by stored id (`None`: not logged). The log
    /// changes only at commit, so an entry holds for the whole batch.
    fetched_mutations: HashMap<String, Option<Replay>>,
    /// `node U+001F branch U+001F module U+001F`: what the commit's notification starts with.
    notify: &'a str,
    db_id: String,
    head: u64,
    savepoint_head: u64,
    /// A statement failed outside a savepoint: PostgreSQL refuses everything until the rollback.
    failed: bool,
    last_read: Option<(String, RecordKey, String)>,
    last_doc: Option<(RecordKey, String)>,
    max_record_bytes: usize,
}

impl<'a> PgTxn<'a> {
    pub(crate) fn new(
        tx: postgres::Transaction<'a>,
        schema: &'a str,
        (sql, prepared, searched): (&'a mut HashMap<String, TableSql>, &'a mut Prepared, &'a HashSet<String>),
        notify: &'a str,
        db_id: String,
        head: u64,
        max_record_bytes: usize,
    ) -> PgTxn<'a> {
        PgTxn {
            tx: Some(tx),
            schema,
            sql,
            prepared,
            searched,
            pending: Pending::default(),
            savepoint_pending: 0,
            staged: HashMap::new(),
            fetched: HashMap::new(),
            fetched_mutations: HashMap::new(),
            notify,
            db_id,
            head,
            savepoint_head: head,
            failed: false,
            last_read: None,
            last_doc: None,
            max_record_bytes,
        }
    }

    /// Writes the pending events, publishes the head and commits; returns the head.
    pub(crate) fn commit(mut self) -> Result<u64, StorageError> {
        self.flush_rows()?;
        self.log_events()?;
        let tx = self.tx.take().ok_or_else(|| StorageError::Database("the transaction was rolled back".into()))?;
        tx.commit().map_err(db)?;
        Ok(self.head)
    }

    fn tx(&mut self) -> Result<&mut postgres::Transaction<'a>, StorageError> {
        self.tx.as_mut().ok_or_else(|| StorageError::Database("the transaction was rolled back".into()))
    }

    /// Runs `f` on the transaction, remembering a failure (which ends the transaction).
    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut postgres::Transaction<'a>) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let out = f(self.tx()?);
        if out.is_err() {
            self.failed = true;
        }
        out.map_err(db)
    }

    /// Sends the staged row writes: per table, the deletes, then the rows.
    fn flush_rows(&mut self) -> Result<(), StorageError> {
        for (name, staged) in std::mem::take(&mut self.staged) {
            let Some(sql) = self.sql.get(&name) else { continue };
            let (delete_many, upsert_many, columns, searched) =
                (sql.delete_many.clone(), sql.upsert_many.clone(), sql.columns.len(), sql.searched);
            let (deletes, writes) = staged.into_statements();
            if !deletes.is_empty() {
                let statement = self.statement(&delete_many)?;
                self.run(|tx| tx.execute(&statement, &[&deletes]))?;
            }
            if writes.is_empty() {
                continue;
            }
            let keys: Vec<&str> = writes.iter().map(|(k, _)| k.as_str()).collect();
            let versions: Vec<i64> = writes.iter().map(|(_, w)| w.version).collect();
            let docs: Vec<&str> = writes.iter().map(|(_, w)| w.doc.as_str()).collect();
            let misfits: Vec<Option<&str>> = writes.iter().map(|(_, w)| w.misfits.as_deref()).collect();
            let typed: Vec<Vec<Option<&str>>> =
                (0..columns).map(|i| writes.iter().map(|(_, w)| w.typed[i].as_deref()).collect()).collect();
            let words: Vec<Option<&str>> = writes.iter().map(|(_, w)| w.words.as_deref()).collect();
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![&keys, &versions, &docs, &misfits];
            params.extend(typed.iter().map(|c| c as &(dyn ToSql + Sync)));
            if searched {
                params.push(&words);
            }
            let statement = self.statement(&upsert_many)?;
            self.run(|tx| tx.execute(&statement, &params))?;
        }
        Ok(())
    }

    /// The pending events, the new head and the notification, in one statement (one round trip
    /// per batch instead of three). The notification is delivered on commit only: other nodes
    /// then read the new events from the log.
    fn log_events(&mut self) -> Result<(), StorageError> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        let sql = format!(
            "WITH logged AS (INSERT INTO {} (seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, source, meta, actor, mutation_digest, prev_row, sent_table, txn)
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bytea[], $14::text[], $15::text[], $16::text[])),
             advanced AS (UPDATE {} SET head = $17 WHERE id = 1)
             SELECT pg_notify('mishkah', $18)",
            self.q("mishkah_events"),
            self.q("mishkah_head")
        );
        let statement = self.statement(&sql)?;
        let p = std::mem::take(&mut self.pending);
        let head = self.head as i64;
        let payload = format!("{}{}", self.notify, self.head);
        self.run(|tx| {
            tx.execute(
                &statement,
                &[
                    &p.seq,
                    &p.event_id,
                    &p.mutation_id,
                    &p.tbl,
                    &p.action,
                    &p.record_key,
                    &p.version,
                    &p.row,
                    &p.created_at,
                    &p.source,
                    &p.meta,
                    &p.actor,
                    &p.digest,
                    &p.prev_row,
                    &p.sent_table,
                    &p.txn,
                    &head,
                    &payload,
                ],
            )
        })?;
        Ok(())
    }

    /// `sql` prepared once per connection.
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StorageError> {
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.run(|tx| tx.prepare(sql))?;
        self.prepared.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn table_sql(&mut self, table: &Table) -> &TableSql {
        let (schema, searched) = (self.schema, self.searched.contains(&table.name));
        self.sql.entry(table.name.clone()).or_insert_with(|| TableSql::new(schema, table, searched))
    }

    fn q(&self, name: &str) -> String {
        qualified(self.schema, name)
    }
}

impl WriteTxn for PgTxn<'_> {
    /// One statement per table for the rows, one for the mutation ids.
    fn prefetch(&mut self, wants: &Prefetch<'_>) -> Result<(), StorageError> {
        let mut by_table: HashMap<&str, (&Table, Vec<&str>)> = HashMap::new();
        for (table, key) in &wants.rows {
            let staged = self.staged.get(&table.name).is_some_and(|t| t.get(&key.0).is_some());
            if !staged && !key.0.contains('\0') {
                by_table.entry(table.name.as_str()).or_insert_with(|| (table, Vec::new())).1.push(&key.0);
            }
        }
        for (name, (table, keys)) in by_table {
            if keys.len() < 2 {
                // One key: the write's own read, a statement prepared once, is one round trip
                // too; a statement prepared anew would be two.
                continue;
            }
            let sql = self.table_sql(table).select_docs.clone();
            // Prepared anew, so planned for these keys: a plan kept from when the table was small
            // scans every row for every key (44 ms a batch at 20,000 rows, measured).
            let found = self.run(|tx| tx.query(sql.as_str(), &[&keys]))?;
            let fetched = self.fetched.entry(name.to_owned()).or_default();
            for key in keys {
                fetched.insert(key.to_owned(), None);
            }
            for row in found {
                fetched.insert(row.get(0), Some(row.get(1)));
            }
        }
        let ids: Vec<String> = wants
            .mutations
            .iter()
            .map(|(scope, id)| mutation_key::stored(scope, id))
            .filter(|k| !self.pending.by_mutation.contains_key(k) && !k.contains('\0'))
            .collect();
        if ids.len() > 1 {
            let sql = format!(
                "SELECT {LOGGED_COLUMNS} FROM {} WHERE mutation_id = ANY($1::text[])",
                self.q("mishkah_events")
            );
            let found = self.run(|tx| tx.query(sql.as_str(), &[&ids]))?;
            for id in ids {
                self.fetched_mutations.insert(id, None);
            }
            for row in found {
                let stored: Option<String> = row.get("mutation_id");
                let replay = Replay { event: event_of(&row)?, digest: row.get(14) };
                self.fetched_mutations.insert(stored.unwrap_or_default(), Some(replay));
            }
        }
        Ok(())
    }

    fn row(&mut self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        if key.0.contains('\0') {
            // PostgreSQL's text holds no NUL: no stored key has one ([`WriteTxn::store_change`]
            // refuses to store one).
            return Ok(None);
        }
        if let Some(staged) = self.staged.get(&table.name).and_then(|t| t.get(&key.0)) {
            let Some(doc) = staged else { return Ok(None) };
            let (row, doc) = (parse_doc(doc)?, doc.to_owned());
            self.last_read = Some((table.name.clone(), key.clone(), doc));
            return Ok(Some(row));
        }
        let doc = match self.fetched.get_mut(&table.name).and_then(|t| t.remove(&key.0)) {
            Some(fetched) => fetched,
            None => {
                let sql = self.table_sql(table).select_doc.clone();
                let statement = self.statement(&sql)?;
                self.run(|tx| tx.query_opt(&statement, &[&key.0]))?.map(|found| found.get(0))
            }
        };
        let Some(doc) = doc else { return Ok(None) };
        let row = parse_doc(&doc)?;
        self.last_read = Some((table.name.clone(), key.clone(), doc));
        Ok(Some(row))
    }

    fn store_change(&mut self, table: &Table, change: &Change) -> Result<(), StorageError> {
        if change.key.0.contains('\0') {
            return Err(StorageError::Unsupported("a record key holding U+0000 (NUL)".into()));
        }
        if let Some(fetched) = self.fetched.get_mut(&table.name) {
            fetched.remove(&change.key.0);
        }
        let Some(row) = &change.row else {
            if !self.table_sql(table).guarded {
                self.staged.entry(table.name.clone()).or_default().stage(&change.key.0, None);
                return Ok(());
            }
            let sql = self.table_sql(table).delete.clone();
            let statement = self.statement(&sql)?;
            self.run(|tx| tx.execute(&statement, &[&change.key.0]))?;
            return Ok(());
        };
        let doc = serde_json::to_string(row).expect("a JSON map serializes");
        if doc.len() > self.max_record_bytes {
            return Err(StorageError::TooLarge {
                table: table.name.clone(),
                bytes: doc.len(),
                max: self.max_record_bytes,
            });
        }
        let sql = self.table_sql(table);
        let (upsert, guarded) = (sql.upsert.clone(), sql.guarded);
        let mut misfits = Vec::new();
        let typed: Vec<Option<String>> = sql
            .columns
            .iter()
            .map(|(column, field, ty)| {
                let value = row.get(field).or_else(|| row.get(column)).unwrap_or(&Value::Null);
                typed_text(*ty, value).unwrap_or_else(|()| {
                    misfits.push(column.clone());
                    None
                })
            })
            .collect();
        let misfits = (!misfits.is_empty()).then(|| misfits.join(","));
        let words = sql.searched.then(|| search::words(table, row));
        let version = change.version;
        if !guarded {
            let write = Write { version, doc: doc.clone(), misfits, typed, words };
            self.staged.entry(table.name.clone()).or_default().stage(&change.key.0, Some(write));
            self.last_doc = Some((change.key.clone(), doc));
            return Ok(());
        }
        let upsert = self.statement(&upsert)?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&change.key.0, &version, &doc, &misfits];
        params.extend(typed.iter().map(|v| v as &(dyn ToSql + Sync)));
        if let Some(words) = &words {
            params.push(words);
        }
        let tx = self.tx()?;
        let stored = if guarded {
            // A unique key taken by another row refuses this write alone: PostgreSQL would
            // otherwise abort the whole transaction, and with it every write of the batch.
            let mut attempt = tx.transaction().map_err(db)?;
            match attempt.execute(&upsert, &params) {
                Ok(_) => attempt.commit(),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
                    drop(attempt);
                    return Err(StorageError::Unique { table: table.name.clone(), message });
                }
                Err(e) => Err(e),
            }
        } else {
            tx.execute(&upsert, &params).map(|_| ())
        };
        if let Err(e) = stored {
            self.failed = true;
            return Err(db(e));
        }
        self.last_doc = Some((change.key.clone(), doc));
        Ok(())
    }

    fn append_event(&mut self, event: NewEvent<'_>) -> Result<ChangeEvent, StorageError> {
        let sequence = self.head + 1;
        let event_id = format!("evt-{}-{sequence}", self.db_id);
        let change = &event.change;
        // The texts this transaction already has: the row it stored, the row it read before.
        let (row_text, previous_text) = held_texts(change, self.last_doc.take(), self.last_read.take());
        self.pending.push(EventRow::appended(sequence, event_id.clone(), &event, row_text, previous_text));
        self.head = sequence;
        Ok(ChangeEvent {
            sequence,
            event_id,
            mutation_id: event.mutation.map(|m| m.id.to_owned()),
            created_at: event.created_at.to_owned(),
            transaction_id: event.transaction.map(str::to_owned),
            change: event.change,
        })
    }

    fn import_event(&mut self, logged: &mishkah_store::LoggedEvent) -> Result<(), StorageError> {
        if logged.event.sequence <= self.head {
            let (sequence, head) = (logged.event.sequence, self.head);
            return Err(StorageError::Corrupt(format!("event {sequence} is not after the head {head}")));
        }
        self.pending.push(EventRow::imported(logged));
        self.head = logged.event.sequence;
        Ok(())
    }

    fn last_event_id(&mut self) -> Result<Option<String>, StorageError> {
        if let Some(id) = self.pending.event_id.last() {
            return Ok(Some(id.clone()));
        }
        let sql = format!("SELECT event_id FROM {} ORDER BY seq DESC LIMIT 1", self.q("mishkah_events"));
        Ok(self.run(|tx| tx.query_opt(&sql, &[]))?.map(|r| r.get(0)))
    }

    fn committed_event(&mut self, scope: &str, id: &str) -> Result<Option<Replay>, StorageError> {
        let sql = format!("SELECT {LOGGED_COLUMNS} FROM {} WHERE mutation_id = $1", self.q("mishkah_events"));
        let key = mutation_key::stored(scope, id);
        if key.contains('\0') {
            // PostgreSQL's text holds no NUL: no logged id has one (the engine refuses them).
            return Ok(None);
        }
        if let Some(&i) = self.pending.by_mutation.get(&key) {
            return Ok(Some(Replay { event: self.pending.event(i)?, digest: self.pending.digest[i].clone() }));
        }
        if let Some(fetched) = self.fetched_mutations.get(&key) {
            return Ok(fetched.clone());
        }
        let statement = self.statement(&sql)?;
        let Some(found) = self.run(|tx| tx.query_opt(&statement, &[&key]))? else { return Ok(None) };
        let event = event_of(&found)?;
        Ok(Some(Replay { event, digest: found.get(14) }))
    }

    fn peek_counter(&mut self, counter_key: &str, rule: &SequenceRule) -> Result<i64, StorageError> {
        let sql = format!("SELECT last FROM {} WHERE counter_key = $1", self.q("mishkah_counters"));
        let statement = self.statement(&sql)?;
        let last: Option<i64> = self.run(|tx| tx.query_opt(&statement, &[&counter_key]))?.map(|r| r.get(0));
        Ok(rule.next(last).0)
    }

    fn set_counter(&mut self, counter_key: &str, last: i64, now: &str) -> Result<(), StorageError> {
        let sql = format!(
            "INSERT INTO {} (counter_key, last, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (counter_key) DO UPDATE SET last = excluded.last, updated_at = excluded.updated_at",
            self.q("mishkah_counters")
        );
        let statement = self.statement(&sql)?;
        self.run(|tx| tx.execute(&statement, &[&counter_key, &last, &now]))?;
        Ok(())
    }

    fn all_rows(&mut self, table: &Table) -> Result<Vec<(RecordKey, Row)>, StorageError> {
        self.flush_rows()?;
        let sql = self.table_sql(table).all_rows.clone();
        let rows = self.run(|tx| tx.query(&sql, &[]))?;
        rows.iter().map(|r| Ok((RecordKey(r.get(0)), parse_doc(r.get(1))?))).collect()
    }

    /// Read whole and filtered by the core's evaluator (filters are not compiled for PostgreSQL
    /// yet): the same rows the SQLite backend selects in SQL.
    fn rows_where(&mut self, table: &Table, filter: &Filter) -> Result<Vec<Row>, StorageError> {
        let rows = self.all_rows(table)?;
        Ok(rows.into_iter().map(|(_, r)| r).filter(|r| filter.eval_in(Some(table), r, &Bindings::default())).collect())
    }

    fn archive_row(
        &mut self,
        archive: &str,
        table: &Table,
        key: &RecordKey,
        row: &Row,
        now: &str,
    ) -> Result<(), StorageError> {
        let doc = serde_json::to_string(row).expect("a JSON map serializes");
        let sql = format!(
            "INSERT INTO {} (archive, tbl, record_key, doc, archived_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (archive, tbl, record_key) DO UPDATE SET doc = excluded.doc, archived_at = excluded.archived_at",
            self.q("mishkah_archive")
        );
        self.run(|tx| tx.execute(&sql, &[&archive, &table.name, &key.0, &doc, &now]))?;
        Ok(())
    }

    fn reset_counters(&mut self, counters: &BTreeMap<String, i64>, now: &str) -> Result<(), StorageError> {
        let table = self.q("mishkah_counters");
        self.run(|tx| tx.execute(&format!("DELETE FROM {table}"), &[]))?;
        for (key, last) in counters {
            let sql = format!("INSERT INTO {table} (counter_key, last, updated_at) VALUES ($1, $2, $3)");
            self.run(|tx| tx.execute(&sql, &[key, last, &now]))?;
        }
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        self.tx.is_some() && !self.failed
    }

    fn abandon(&mut self) {
        self.last_doc = None;
        self.last_read = None;
        self.pending = Pending::default();
        self.staged.clear();
        if let Some(tx) = self.tx.take() {
            // Fails only when the connection is gone; either way nothing is kept.
            let _ = tx.rollback();
        }
    }

    /// The staged rows go first, so that undoing to the savepoint undoes only what follows.
    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.flush_rows()?;
        self.run(|tx| tx.batch_execute("SAVEPOINT m"))?;
        self.savepoint_head = self.head;
        self.savepoint_pending = self.pending.len();
        Ok(())
    }

    fn release(&mut self) -> Result<(), StorageError> {
        self.run(|tx| tx.batch_execute("RELEASE SAVEPOINT m"))
    }

    fn rollback_to(&mut self) -> Result<(), StorageError> {
        self.last_doc = None;
        self.last_read = None;
        self.head = self.savepoint_head;
        self.pending.truncate(self.savepoint_pending);
        self.staged.clear();
        let undone = self.tx()?.batch_execute("ROLLBACK TO SAVEPOINT m; RELEASE SAVEPOINT m");
        match undone {
            Ok(()) => {
                self.failed = false;
                Ok(())
            }
            Err(e) => {
                // A mutation that cannot be undone must not be committed with the others.
                self.abandon();
                Err(db(e))
            }
        }
    }
}
