//! [`WriteTxn`] on a PostgreSQL transaction that holds its module's head row.

use std::collections::{BTreeMap, HashMap};

use mishkah_core::query::{Bindings, Filter};
use mishkah_core::schema::{FieldType, Table};
use mishkah_core::sequence::SequenceRule;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Row};
use mishkah_store::layout::{table_name, typed_fields};
use mishkah_store::{mutation_key, parse_doc, NewEvent, Replay, StorageError, WriteTxn};
use postgres::error::SqlState;
use postgres::types::ToSql;
use serde_json::Value;

use crate::db;
use crate::ddl::{has_unique, qualified};
use crate::reader::{event_of, LOGGED_COLUMNS};

/// The SQL of one table's row operations, built once per table.
pub(crate) struct TableSql {
    select_doc: String,
    upsert: String,
    delete: String,
    all_rows: String,
    /// A write may be refused by a unique index: it runs in a savepoint of its own.
    guarded: bool,
    /// `(column, field, type)` of the typed columns, in the upsert's parameter order.
    columns: Vec<(String, String, FieldType)>,
}

impl TableSql {
    fn new(schema: &str, table: &Table) -> TableSql {
        let t = qualified(schema, &table_name(table));
        let columns = typed_fields(table);
        let mut upsert = format!("INSERT INTO {t} (mishkah_key, mishkah_version, mishkah_doc, mishkah_misfits");
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\""));
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
        upsert.push_str(
            ") ON CONFLICT (mishkah_key) DO UPDATE SET mishkah_version = excluded.mishkah_version, \
             mishkah_doc = excluded.mishkah_doc, mishkah_misfits = excluded.mishkah_misfits",
        );
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\" = excluded.\"{c}\""));
        }
        TableSql {
            select_doc: format!("SELECT mishkah_doc FROM {t} WHERE mishkah_key = $1"),
            delete: format!("DELETE FROM {t} WHERE mishkah_key = $1"),
            all_rows: format!("SELECT mishkah_key, mishkah_doc FROM {t} ORDER BY mishkah_row"),
            upsert,
            guarded: has_unique(table),
            columns,
        }
    }
}

/// What a typed column holds for a value: its text when its kind is the field's; else nothing,
/// and the column is named among the row's misfits (a value stored as sent, which only the
/// document holds).
fn typed_text(ty: FieldType, v: &Value) -> Result<Option<String>, ()> {
    match (ty, v) {
        (_, Value::Null) => Ok(None),
        (FieldType::Json, Value::String(s)) => Ok(Some(s.clone())),
        (FieldType::Json, other) => Ok(Some(other.to_string())),
        (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(s)) => Ok(Some(s.clone())),
        (FieldType::Integer | FieldType::Decimal, Value::Number(n)) => Ok(Some(n.to_string())),
        (FieldType::Boolean, Value::Bool(b)) => Ok(Some(b.to_string())),
        _ => Err(()),
    }
}

pub(crate) struct PgTxn<'a> {
    tx: Option<postgres::Transaction<'a>>,
    schema: &'a str,
    sql: &'a mut HashMap<String, TableSql>,
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
        sql: &'a mut HashMap<String, TableSql>,
        db_id: String,
        head: u64,
        max_record_bytes: usize,
    ) -> PgTxn<'a> {
        PgTxn {
            tx: Some(tx),
            schema,
            sql,
            db_id,
            head,
            savepoint_head: head,
            failed: false,
            last_read: None,
            last_doc: None,
            max_record_bytes,
        }
    }

    /// Publishes the head and commits; returns the head.
    pub(crate) fn commit(mut self) -> Result<u64, StorageError> {
        let head = self.head as i64;
        let sql = format!("UPDATE {} SET head = $1 WHERE id = 1", qualified(self.schema, "mishkah_head"));
        let tx = self.tx.take().ok_or_else(|| StorageError::Database("the transaction was rolled back".into()))?;
        let mut tx = tx;
        tx.execute(&sql, &[&head]).map_err(db)?;
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

    fn table_sql(&mut self, table: &Table) -> &TableSql {
        let schema = self.schema;
        self.sql.entry(table.name.clone()).or_insert_with(|| TableSql::new(schema, table))
    }

    fn q(&self, name: &str) -> String {
        qualified(self.schema, name)
    }
}

impl WriteTxn for PgTxn<'_> {
    fn row(&mut self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        let sql = self.table_sql(table).select_doc.clone();
        let found = self.run(|tx| tx.query_opt(&sql, &[&key.0]))?;
        let Some(found) = found else { return Ok(None) };
        let doc: String = found.get(0);
        let row = parse_doc(&doc)?;
        self.last_read = Some((table.name.clone(), key.clone(), doc));
        Ok(Some(row))
    }

    fn store_change(&mut self, table: &Table, change: &Change) -> Result<(), StorageError> {
        let Some(row) = &change.row else {
            let sql = self.table_sql(table).delete.clone();
            self.run(|tx| tx.execute(&sql, &[&change.key.0]))?;
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
        let version = change.version;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&change.key.0, &version, &doc, &misfits];
        params.extend(typed.iter().map(|v| v as &(dyn ToSql + Sync)));
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
        let action = match change.kind {
            ChangeKind::Insert => "insert",
            ChangeKind::Update => "update",
            ChangeKind::Delete => "delete",
        };
        let row = match (self.last_doc.take(), &change.row) {
            (Some((key, doc)), Some(_)) if key == change.key => Some(doc),
            (_, Some(r)) => Some(serde_json::to_string(r).expect("a JSON map serializes")),
            (_, None) => None,
        };
        let previous = event.previous.map(|before| match self.last_read.take() {
            Some((table, key, doc)) if table == change.table && key == change.key => doc,
            _ => serde_json::to_string(before).expect("a JSON map serializes"),
        });
        let meta = if event.meta.is_null() { None } else { Some(event.meta.to_string()) };
        let mutation_id = event.mutation.map(|m| mutation_key::stored(m.scope, m.id));
        let digest = event.mutation.map(|m| m.digest);
        let sql = format!(
            "INSERT INTO {} (seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, source, meta, actor, mutation_digest, prev_row, sent_table)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            self.q("mishkah_events")
        );
        let seq = sequence as i64;
        self.run(|tx| {
            tx.execute(
                &sql,
                &[
                    &seq,
                    &event_id,
                    &mutation_id,
                    &change.table,
                    &action,
                    &change.key.0,
                    &change.version,
                    &row,
                    &event.created_at,
                    &event.source,
                    &meta,
                    &event.actor,
                    &digest,
                    &previous,
                    &event.table_as_sent,
                ],
            )
        })?;
        self.head = sequence;
        Ok(ChangeEvent {
            sequence,
            event_id,
            mutation_id: event.mutation.map(|m| m.id.to_owned()),
            created_at: event.created_at.to_owned(),
            change: event.change,
        })
    }

    fn last_event_id(&mut self) -> Result<Option<String>, StorageError> {
        let sql = format!("SELECT event_id FROM {} ORDER BY seq DESC LIMIT 1", self.q("mishkah_events"));
        Ok(self.run(|tx| tx.query_opt(&sql, &[]))?.map(|r| r.get(0)))
    }

    fn committed_event(&mut self, scope: &str, id: &str) -> Result<Option<Replay>, StorageError> {
        let sql = format!(
            "SELECT {LOGGED_COLUMNS}, mutation_digest FROM {} WHERE mutation_id = $1",
            self.q("mishkah_events")
        );
        let key = mutation_key::stored(scope, id);
        let Some(found) = self.run(|tx| tx.query_opt(&sql, &[&key]))? else { return Ok(None) };
        let event = event_of(&found)?;
        Ok(Some(Replay { event, digest: found.get(14) }))
    }

    fn peek_counter(&mut self, counter_key: &str, rule: &SequenceRule) -> Result<i64, StorageError> {
        let sql = format!("SELECT last FROM {} WHERE counter_key = $1", self.q("mishkah_counters"));
        let last: Option<i64> = self.run(|tx| tx.query_opt(&sql, &[&counter_key]))?.map(|r| r.get(0));
        Ok(rule.next(last).0)
    }

    fn set_counter(&mut self, counter_key: &str, last: i64, now: &str) -> Result<(), StorageError> {
        let sql = format!(
            "INSERT INTO {} (counter_key, last, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (counter_key) DO UPDATE SET last = excluded.last, updated_at = excluded.updated_at",
            self.q("mishkah_counters")
        );
        self.run(|tx| tx.execute(&sql, &[&counter_key, &last, &now]))?;
        Ok(())
    }

    fn all_rows(&mut self, table: &Table) -> Result<Vec<(RecordKey, Row)>, StorageError> {
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
        if let Some(tx) = self.tx.take() {
            // Fails only when the connection is gone; either way nothing is kept.
            let _ = tx.rollback();
        }
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.run(|tx| tx.batch_execute("SAVEPOINT m"))?;
        self.savepoint_head = self.head;
        Ok(())
    }

    fn release(&mut self) -> Result<(), StorageError> {
        self.run(|tx| tx.batch_execute("RELEASE SAVEPOINT m"))
    }

    fn rollback_to(&mut self) -> Result<(), StorageError> {
        self.last_doc = None;
        self.last_read = None;
        self.head = self.savepoint_head;
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
