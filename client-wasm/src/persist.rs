//! IndexedDB persistence (through `rexie`): confirmed rows, the sync cursor, the schema and the
//! outbox. Writes are batched: one transaction per flush, never one per row.

use mishkah_core::{RecordKey, Row};
use rexie::{ObjectStore, Rexie, TransactionMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::JsValue;

use crate::interop::{from_js, to_js};
use crate::state::Pending;

const ROWS: &str = "rows";
const META: &str = "meta";
const OUTBOX: &str = "outbox";

/// An open store database.
pub struct Persist {
    db: Rexie,
}

/// What a previous session left.
#[derive(Default)]
pub struct Loaded {
    /// Cached schema (the serialized core schema).
    pub schema: Option<Value>,
    /// Cursor of the cached rows.
    pub cursor: u64,
    /// `(table, row)`.
    pub rows: Vec<(String, Row)>,
    /// Pending writes.
    pub outbox: Vec<Pending>,
    /// `{sync: "subscriptions"}`: which live query holds which row.
    pub subs: Option<Value>,
    /// The schema route's `{rules, identity}`, for checking writes offline.
    pub access: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct StoredRow {
    t: String,
    k: String,
    r: Row,
}

fn js_err(e: rexie::Error) -> JsValue {
    crate::interop::error("indexeddb", &e.to_string(), Value::Null)
}

fn row_key(table: &str, key: &RecordKey) -> JsValue {
    JsValue::from_str(&format!("{table}\u{1f}{}", key.0))
}

impl Persist {
    /// Opens (creating) the database `name`.
    pub async fn open(name: &str) -> Result<Persist, JsValue> {
        let db = Rexie::builder(name)
            .version(1)
            .add_object_store(ObjectStore::new(ROWS))
            .add_object_store(ObjectStore::new(META))
            .add_object_store(ObjectStore::new(OUTBOX))
            .build()
            .await
            .map_err(js_err)?;
        Ok(Persist { db })
    }

    /// Everything cached, in one read transaction.
    pub async fn load(&self) -> Result<Loaded, JsValue> {
        let tx = self.db.transaction(&[ROWS, META, OUTBOX], TransactionMode::ReadOnly).map_err(js_err)?;
        let mut loaded = Loaded::default();
        let meta = tx.store(META).map_err(js_err)?;
        if let Some(schema) = meta.get("schema".into()).await.map_err(js_err)? {
            loaded.schema = Some(from_js(schema)?);
        }
        if let Some(subs) = meta.get("subs".into()).await.map_err(js_err)? {
            loaded.subs = from_js(subs).ok();
        }
        if let Some(access) = meta.get("access".into()).await.map_err(js_err)? {
            loaded.access = from_js(access).ok();
        }
        if let Some(cursor) = meta.get("cursor".into()).await.map_err(js_err)? {
            loaded.cursor = cursor.as_f64().unwrap_or(0.0) as u64;
        }
        for value in tx.store(ROWS).map_err(js_err)?.get_all(None, None).await.map_err(js_err)? {
            if let Ok(row) = serde_wasm_bindgen::from_value::<StoredRow>(value) {
                loaded.rows.push((row.t, row.r));
            }
        }
        for value in tx.store(OUTBOX).map_err(js_err)?.get_all(None, None).await.map_err(js_err)? {
            if let Ok(p) = serde_wasm_bindgen::from_value::<Pending>(value) {
                loaded.outbox.push(p);
            }
        }
        loaded.outbox.sort_by(|a, b| a.seq.total_cmp(&b.seq));
        tx.done().await.map_err(js_err)?;
        Ok(loaded)
    }

    /// Stores row changes, the new cursor and (subscriptions mode) the membership in one
    /// transaction, so rows and who holds them never disagree; `replace` clears the rows first
    /// (a full snapshot).
    pub async fn write_rows(
        &self,
        changes: Vec<(String, RecordKey, Option<Row>)>,
        cursor: u64,
        replace: bool,
        subs: Option<Value>,
    ) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[ROWS, META], TransactionMode::ReadWrite).map_err(js_err)?;
        let rows = tx.store(ROWS).map_err(js_err)?;
        if replace {
            rows.clear().await.map_err(js_err)?;
        }
        for (table, key, row) in changes {
            match row {
                Some(r) => {
                    let value = to_js(&StoredRow { t: table.clone(), k: key.0.clone(), r });
                    rows.put(&value, Some(&row_key(&table, &key))).await.map_err(js_err)?;
                }
                None => rows.delete(row_key(&table, &key)).await.map_err(js_err)?,
            }
        }
        let meta = tx.store(META).map_err(js_err)?;
        meta.put(&JsValue::from_f64(cursor as f64), Some(&"cursor".into())).await.map_err(js_err)?;
        if let Some(subs) = subs {
            meta.put(&to_js(&subs), Some(&"subs".into())).await.map_err(js_err)?;
        }
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Caches the schema.
    pub async fn save_schema(&self, schema: &Value) -> Result<(), JsValue> {
        self.put_meta("schema", schema).await
    }

    /// Caches the write rules and the identity they were given for (`{rules, identity}`).
    pub async fn save_access(&self, access: &Value) -> Result<(), JsValue> {
        self.put_meta("access", access).await
    }

    /// This database's client id: the one stored, else `fresh`, stored now. Read and written in
    /// one transaction, so tabs opening together agree on one id (the server recognises a replay
    /// of the outbox only under the id it was first sent with).
    pub async fn client_id(&self, fresh: &str) -> Result<String, JsValue> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadWrite).map_err(js_err)?;
        let meta = tx.store(META).map_err(js_err)?;
        let stored = meta.get("client".into()).await.map_err(js_err)?.and_then(|v| v.as_string());
        let id = match stored {
            Some(id) => id,
            None => {
                meta.put(&JsValue::from_str(fresh), Some(&"client".into())).await.map_err(js_err)?;
                fresh.to_owned()
            }
        };
        tx.done().await.map_err(js_err)?;
        Ok(id)
    }

    async fn put_meta(&self, key: &str, value: &Value) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadWrite).map_err(js_err)?;
        tx.store(META).map_err(js_err)?.put(&to_js(value), Some(&key.into())).await.map_err(js_err)?;
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Adds a pending write (before it is ever sent).
    pub async fn put_pending(&self, p: &Pending) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[OUTBOX], TransactionMode::ReadWrite).map_err(js_err)?;
        tx.store(OUTBOX).map_err(js_err)?.put(&to_js(p), Some(&JsValue::from_f64(p.seq))).await.map_err(js_err)?;
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Removes a settled write.
    pub async fn delete_pending(&self, seq: f64) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[OUTBOX], TransactionMode::ReadWrite).map_err(js_err)?;
        tx.store(OUTBOX).map_err(js_err)?.delete(JsValue::from_f64(seq)).await.map_err(js_err)?;
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Closes the database.
    pub fn close(self) {
        self.db.close();
    }

    /// Deletes a whole database (tests, "forget this device").
    pub async fn delete(name: &str) -> Result<(), JsValue> {
        Rexie::delete(name).await.map_err(js_err)
    }
}
