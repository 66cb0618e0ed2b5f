//! What one write needs inside a transaction: the narrow surface the write path is written against.

use mishkah_core::schema::{FieldType, Table};
use mishkah_core::sequence::SequenceRule;
use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Row};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::ddl::{sql_table, typed_columns};
use super::events::row_to_event;
use crate::db;
use mishkah_store::{held_texts, mutation_key, parse_doc, EventRow, NewEvent, Replay, StorageError, WriteTxn};

/// The SQL of one table's row operations, built once per table rather than once per write.
pub(super) struct TableSql {
    select_doc: String,
    upsert: String,
    delete: String,
    all_rows: String,
    /// Whether the table has a search index to keep in step (then `upsert` and `delete` return
    /// the row's rowid, which keys the index).
    searchable: bool,
    /// `(column, field, type)` of the typed columns, in the upsert's parameter order.
    columns: Vec<(String, String, FieldType)>,
}

impl TableSql {
    fn new(table: &Table, searchable: bool) -> TableSql {
        let t = sql_table(table);
        let columns: Vec<(String, String, FieldType)> = typed_columns(table)
            .into_iter()
            .map(|(c, f, _)| {
                let ty = table.field(&f).map_or(FieldType::Json, |field| field.ty);
                (c, f, ty)
            })
            .collect();
        let mut upsert = format!("INSERT INTO \"{t}\" (mishkah_key, mishkah_version, mishkah_doc");
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\""));
        }
        upsert.push_str(") VALUES (?1, ?2, ?3");
        for i in 0..columns.len() {
            upsert.push_str(&format!(", ?{}", i + 4));
        }
        upsert.push_str(
            ") ON CONFLICT(mishkah_key) DO UPDATE SET mishkah_version = excluded.mishkah_version, mishkah_doc = excluded.mishkah_doc",
        );
        for (c, ..) in &columns {
            upsert.push_str(&format!(", \"{c}\" = excluded.\"{c}\""));
        }
        let mut delete = format!("DELETE FROM \"{t}\" WHERE mishkah_key = ?1");
        if searchable {
            upsert.push_str(" RETURNING rowid");
            delete.push_str(" RETURNING rowid");
        }
        TableSql {
            select_doc: format!("SELECT mishkah_doc FROM \"{t}\" WHERE mishkah_key = ?1"),
            delete,
            all_rows: format!("SELECT mishkah_key, mishkah_doc FROM \"{t}\" ORDER BY rowid"),
            upsert,
            searchable,
            columns,
        }
    }
}

/// Per-table SQL, by table name.
pub(super) type SqlCache = std::collections::HashMap<String, TableSql>;

fn sql_of<'a>(cache: &'a mut SqlCache, conn: &Connection, table: &Table) -> Result<&'a TableSql, StorageError> {
    if !cache.contains_key(&table.name) {
        let searchable = super::search::is_indexed(conn, table)?;
        cache.insert(table.name.clone(), TableSql::new(table, searchable));
    }
    Ok(cache.get(&table.name).expect("just inserted"))
}

/// [`WriteTxn`] on a SQLite connection inside `BEGIN IMMEDIATE`.
pub(super) struct SqliteTxn<'c> {
    pub(super) conn: &'c Connection,
    pub(super) sql: &'c mut SqlCache,
    /// Random per database: event ids are `evt-<db_id>-<sequence>`, unique without an index.
    pub(super) db_id: &'c str,
    pub(super) head: u64,
    pub(super) savepoint_head: u64,
    /// The JSON of the row last stored, reused by the event that logs it (serialized once).
    pub(super) last_doc: Option<(RecordKey, String)>,
    /// The JSON of the row last read, `(table, key, doc)`: the event of a change to it logs it as
    /// the row before without serializing it again.
    pub(super) last_read: Option<(String, RecordKey, String)>,
    /// Longest JSON a stored record may have.
    pub(super) max_record_bytes: usize,
}

impl SqliteTxn<'_> {
    /// Appends `e` to the log; it becomes the head.
    fn insert_event(&mut self, e: &EventRow) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO mishkah_events (seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, source, meta, actor, mutation_digest, prev_row, sent_table, txn)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )
            .map_err(db)?
            .execute(params![
                e.sequence as i64,
                e.event_id,
                e.mutation_id,
                e.table,
                e.action,
                e.key,
                e.version,
                e.row,
                e.created_at,
                e.source,
                e.meta,
                e.actor,
                e.digest,
                e.previous,
                e.table_as_sent,
                e.transaction
            ])
            .map_err(db)?;
        self.head = e.sequence;
        Ok(())
    }
}

impl WriteTxn for SqliteTxn<'_> {
    fn row(&mut self, table: &Table, key: &RecordKey) -> Result<Option<Row>, StorageError> {
        let sql = &sql_of(self.sql, self.conn, table)?.select_doc;
        let doc: Option<String> = self
            .conn
            .prepare_cached(sql)
            .map_err(db)?
            .query_row(params![key.0], |r| r.get(0))
            .optional()
            .map_err(db)?;
        let Some(doc) = doc else { return Ok(None) };
        let row = parse_doc(&doc)?;
        match &mut self.last_read {
            Some((t, k, d)) => {
                t.clone_from(&table.name);
                k.clone_from(key);
                *d = doc;
            }
            None => self.last_read = Some((table.name.clone(), key.clone(), doc)),
        }
        Ok(Some(row))
    }

    fn store_change(&mut self, table: &Table, change: &Change) -> Result<(), StorageError> {
        let sql = sql_of(self.sql, self.conn, table)?;
        let Some(row) = &change.row else {
            if sql.searchable {
                let rowid: Option<i64> = self
                    .conn
                    .prepare_cached(&sql.delete)
                    .map_err(db)?
                    .query_row(params![change.key.0], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                if let Some(rowid) = rowid {
                    super::search::reindex(self.conn, table, rowid, None, false)?;
                }
            } else {
                self.conn.prepare_cached(&sql.delete).map_err(db)?.execute(params![change.key.0]).map_err(db)?;
            }
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
        let typed: Vec<rusqlite::types::Value> = sql
            .columns
            .iter()
            .map(|(column, field, ty)| {
                typed_value(*ty, row.get(field).or_else(|| row.get(column)).unwrap_or(&Value::Null))
            })
            .collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(3 + typed.len());
        values.push(&change.key.0);
        values.push(&change.version);
        values.push(&doc);
        values.extend(typed.iter().map(|v| v as &dyn rusqlite::ToSql));
        let searchable = sql.searchable;
        let result = match searchable {
            true => {
                self.conn.prepare_cached(&sql.upsert).map_err(db)?.query_row(values.as_slice(), |r| r.get::<_, i64>(0))
            }
            false => self.conn.prepare_cached(&sql.upsert).map_err(db)?.execute(values.as_slice()).map(|_| 0),
        };
        match result {
            Ok(rowid) => {
                if searchable {
                    super::search::reindex(self.conn, table, rowid, Some(row), change.kind == ChangeKind::Insert)?;
                }
                self.last_doc = Some((change.key.clone(), doc));
                Ok(())
            }
            Err(rusqlite::Error::SqliteFailure(e, msg)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(StorageError::Unique { table: table.name.clone(), message: msg.unwrap_or_default() })
            }
            Err(e) => Err(db(e)),
        }
    }

    fn append_event(&mut self, event: NewEvent<'_>) -> Result<ChangeEvent, StorageError> {
        let sequence = self.head + 1;
        let event_id = format!("evt-{}-{sequence}", self.db_id);
        let change = &event.change;
        // The texts this transaction already has: the row it stored, the row it read before.
        let (row_text, previous_text) = held_texts(change, self.last_doc.take(), self.last_read.take());
        self.insert_event(&EventRow::appended(sequence, event_id.clone(), &event, row_text, previous_text))?;
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
        self.insert_event(&EventRow::imported(logged))
    }

    fn last_event_id(&mut self) -> Result<Option<String>, StorageError> {
        self.conn
            .prepare_cached("SELECT event_id FROM mishkah_events ORDER BY seq DESC LIMIT 1")
            .map_err(db)?
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    fn committed_event(&mut self, scope: &str, id: &str) -> Result<Option<Replay>, StorageError> {
        let mut stmt = self.conn.prepare_cached(super::events::SELECT_EVENT_BY_MUTATION).map_err(db)?;
        let key = mutation_key::stored(scope, id);
        let found = stmt
            .query_row(params![key], |r| Ok((row_to_event(r)?, r.get::<_, Option<Vec<u8>>>(10)?)))
            .optional()
            .map_err(db)?;
        let Some((event, digest)) = found else { return Ok(None) };
        Ok(Some(Replay { event: event?, digest }))
    }

    fn peek_counter(&mut self, counter_key: &str, rule: &SequenceRule) -> Result<i64, StorageError> {
        let last: Option<i64> = self
            .conn
            .prepare_cached("SELECT last FROM mishkah_counters WHERE counter_key = ?1")
            .map_err(db)?
            .query_row(params![counter_key], |r| r.get(0))
            .optional()
            .map_err(db)?;
        Ok(rule.next(last).0)
    }

    fn set_counter(&mut self, counter_key: &str, last: i64, now: &str) -> Result<(), StorageError> {
        self.conn
            .prepare_cached(
                "INSERT INTO mishkah_counters (counter_key, last, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(counter_key) DO UPDATE SET last = excluded.last, updated_at = excluded.updated_at",
            )
            .map_err(db)?
            .execute(params![counter_key, last, now])
            .map_err(db)?;
        Ok(())
    }

    fn all_rows(&mut self, table: &Table) -> Result<Vec<(RecordKey, Row)>, StorageError> {
        let mut stmt = self.conn.prepare_cached(&sql_of(self.sql, self.conn, table)?.all_rows).map_err(db)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (key, doc) = row.map_err(db)?;
            out.push((RecordKey(key), parse_doc(&doc)?));
        }
        Ok(out)
    }

    fn rows_where(&mut self, table: &Table, filter: &mishkah_core::query::Filter) -> Result<Vec<Row>, StorageError> {
        let compiled = super::filter_sql::compile(&super::filter_sql::Sqlite, table, filter, 1);
        let sql = format!("SELECT mishkah_doc FROM \"{}\" WHERE {} ORDER BY rowid", sql_table(table), compiled.sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let docs =
            stmt.query_map(rusqlite::params_from_iter(compiled.params), |r| r.get::<_, String>(0)).map_err(db)?;
        let mut out = Vec::new();
        for doc in docs {
            out.push(parse_doc(&doc.map_err(db)?)?);
        }
        Ok(out)
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
        self.conn
            .prepare_cached(
                "INSERT INTO mishkah_archive (archive, tbl, record_key, doc, archived_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(archive, tbl, record_key) DO UPDATE SET doc = excluded.doc, archived_at = excluded.archived_at",
            ).map_err(db)?
            .execute(params![archive, table.name, key.0, doc, now]).map_err(db)?;
        Ok(())
    }

    fn reset_counters(
        &mut self,
        counters: &std::collections::BTreeMap<String, i64>,
        now: &str,
    ) -> Result<(), StorageError> {
        self.conn.execute("DELETE FROM mishkah_counters", []).map_err(db)?;
        for (key, last) in counters {
            self.conn
                .execute(
                    "INSERT INTO mishkah_counters (counter_key, last, updated_at) VALUES (?1, ?2, ?3)",
                    params![key, last, now],
                )
                .map_err(db)?;
        }
        Ok(())
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }

    fn abandon(&mut self) {
        // The transaction's head is dropped with it: only a commit publishes a head.
        self.last_doc = None;
        self.last_read = None;
        // Fails only when SQLite already rolled back by itself; either way nothing is pending.
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn savepoint(&mut self) -> Result<(), StorageError> {
        self.conn.prepare_cached("SAVEPOINT m").map_err(db)?.execute([]).map_err(db)?;
        self.savepoint_head = self.head;
        Ok(())
    }

    fn release(&mut self) -> Result<(), StorageError> {
        self.conn.prepare_cached("RELEASE m").map_err(db)?.execute([]).map_err(db)?;
        Ok(())
    }

    fn rollback_to(&mut self) -> Result<(), StorageError> {
        self.last_doc = None;
        self.last_read = None;
        if let Err(e) = self.conn.prepare_cached("ROLLBACK TO m").and_then(|mut st| st.execute([])) {
            // A mutation that cannot be undone must not be committed with the others: end the
            // whole transaction, so the writer fails the batch (`in_transaction` turns false).
            let _ = self.conn.execute_batch("ROLLBACK");
            self.head = self.savepoint_head;
            return Err(db(e));
        }
        self.conn.prepare_cached("RELEASE m").map_err(db)?.execute([]).map_err(db)?;
        self.last_doc = None;
        self.head = self.savepoint_head;
        Ok(())
    }
}

/// What a typed column holds for a value: the value when its kind is the field's, else (a value
/// stored as sent under `--validation lenient`) an empty BLOB, which no comparison of the field's
/// kind matches and which is not NULL — so a filter on the column still means what the core's
/// evaluator means over the stored document (`storage/filter_sql.rs`).
fn typed_value(ty: FieldType, v: &Value) -> rusqlite::types::Value {
    let fits = matches!(
        (ty, v),
        (_, Value::Null)
            | (FieldType::Json, _)
            | (FieldType::Text | FieldType::Date | FieldType::Timestamp, Value::String(_))
            | (FieldType::Integer | FieldType::Decimal, Value::Number(_))
            | (FieldType::Boolean, Value::Bool(_))
    );
    match fits {
        true => sql_value(v),
        false => rusqlite::types::Value::Blob(Vec::new()),
    }
}

fn sql_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => S::Integer(i),
            None => S::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => S::Text(s.clone()),
        other => S::Text(other.to_string()),
    }
}
