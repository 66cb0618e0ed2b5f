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
    /// A first sync under way (its rows are held back: they are not yet the module at any one
    /// sequence).
    pub initial: Option<Initial>,
}

/// Where an unfinished first sync stands: the first page's sequence (the delta that completes
/// the sync starts there) and the next page to fetch (`None` once every page is stored).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Initial {
    #[serde(default)]
    pub at: Option<u64>,
    #[serde(default)]
    pub next: Option<Value>,
    /// Every page is stored; what is left is the delta since `at`.
    #[serde(default)]
    pub paged: bool,
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

fn initial_of(stored: JsValue) -> Result<Initial, JsValue> {
    serde_json::from_value(from_js(stored)?)
        .map_err(|e| crate::interop::error("indexeddb", &e.to_string(), Value::Null))
}

async fn read_rows(store: &rexie::Store) -> Result<Vec<(String, Row)>, JsValue> {
    let mut rows = Vec::new();
    for value in store.get_all(None, None).await.map_err(js_err)? {
        if let Ok(row) = serde_wasm_bindgen::from_value::<StoredRow>(value) {
            rows.push((row.t, row.r));
        }
    }
    Ok(rows)
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
        if let Some(initial) = meta.get("initial".into()).await.map_err(js_err)? {
            loaded.initial = Some(initial_of(initial)?);
            // Rows of a sync that has not finished are no state the server ever had.
            loaded.cursor = 0;
        } else {
            loaded.rows = read_rows(&tx.store(ROWS).map_err(js_err)?).await?;
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
    ///
    /// `finish_initial`: these changes complete a first sync (the delta since its first page, or a
    /// whole snapshot): its rows become the module at `cursor` in this same transaction.
    pub async fn write_rows(
        &self,
        changes: Vec<(String, RecordKey, Option<Row>)>,
        cursor: u64,
        replace: bool,
        subs: Option<Value>,
        finish_initial: bool,
    ) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[ROWS, META], TransactionMode::ReadWrite).map_err(js_err)?;
        let rows = tx.store(ROWS).map_err(js_err)?;
        if replace {
            rows.clear().await.map_err(js_err)?;
        }
        let mut puts = Vec::new();
        for (table, key, row) in changes {
            match row {
                Some(r) => {
                    let value = to_js(&StoredRow { t: table.clone(), k: key.0.clone(), r });
                    puts.push((value, Some(row_key(&table, &key))));
                }
                None => {
                    rows.put_all(std::mem::take(&mut puts).into_iter()).await.map_err(js_err)?;
                    rows.delete(row_key(&table, &key)).await.map_err(js_err)?;
                }
            }
        }
        // Requests issued together, awaited once: one round trip per batch, not per row.
        rows.put_all(puts.into_iter()).await.map_err(js_err)?;
        let meta = tx.store(META).map_err(js_err)?;
        if replace || finish_initial {
            meta.delete("initial".into()).await.map_err(js_err)?;
        }
        meta.put(&JsValue::from_f64(cursor as f64), Some(&"cursor".into())).await.map_err(js_err)?;
        if let Some(subs) = subs {
            meta.put(&to_js(&subs), Some(&"subs".into())).await.map_err(js_err)?;
        }
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Where an unfinished first sync stands, if one is under way.
    pub async fn initial(&self) -> Result<Option<Initial>, JsValue> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadOnly).map_err(js_err)?;
        let stored = tx.store(META).map_err(js_err)?.get("initial".into()).await.map_err(js_err)?;
        tx.done().await.map_err(js_err)?;
        stored.map(initial_of).transpose()
    }

    /// Every stored row, whether or not a first sync is under way.
    pub async fn rows(&self) -> Result<Vec<(String, Row)>, JsValue> {
        let tx = self.db.transaction(&[ROWS], TransactionMode::ReadOnly).map_err(js_err)?;
        let rows = read_rows(&tx.store(ROWS).map_err(js_err)?).await?;
        tx.done().await.map_err(js_err)?;
        Ok(rows)
    }

    /// Starts a first sync from nothing: the rows go, and until it finishes none is shown.
    pub async fn begin_initial(&self) -> Result<Initial, JsValue> {
        let tx = self.db.transaction(&[ROWS, META], TransactionMode::ReadWrite).map_err(js_err)?;
        tx.store(ROWS).map_err(js_err)?.clear().await.map_err(js_err)?;
        let initial = Initial::default();
        let meta = tx.store(META).map_err(js_err)?;
        meta.put(&to_js(&initial), Some(&"initial".into())).await.map_err(js_err)?;
        meta.put(&JsValue::from_f64(0.0), Some(&"cursor".into())).await.map_err(js_err)?;
        tx.done().await.map_err(js_err)?;
        Ok(initial)
    }

    /// Stores one page of a first sync (`{sequence, tables, keys, next}` as the server sent it,
    /// never converted row by row) and where the sync now stands, in one transaction: a page is
    /// kept whole or not at all, and the position never runs ahead of the rows.
    pub async fn write_page(&self, page: &JsValue, initial: &Initial) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[ROWS, META], TransactionMode::ReadWrite).map_err(js_err)?;
        let rows = tx.store(ROWS).map_err(js_err)?;
        let tables = js_sys::Reflect::get(page, &"tables".into())?;
        let keys = js_sys::Reflect::get(page, &"keys".into())?;
        let mut puts = Vec::new();
        for entry in js_sys::Object::entries(&tables.into()).iter() {
            let entry: js_sys::Array = entry.into();
            let table = entry.get(0);
            let list: js_sys::Array = entry.get(1).into();
            let table_keys: js_sys::Array = js_sys::Reflect::get(&keys, &table)?.into();
            let name = table.as_string().unwrap_or_default();
            for (row, key) in list.iter().zip(table_keys.iter()) {
                let stored = js_sys::Object::new();
                js_sys::Reflect::set(&stored, &"t".into(), &table)?;
                js_sys::Reflect::set(&stored, &"k".into(), &key)?;
                js_sys::Reflect::set(&stored, &"r".into(), &row)?;
                let id = JsValue::from_str(&format!("{name}\u{1f}{}", key.as_string().unwrap_or_default()));
                puts.push((stored.into(), Some(id)));
            }
        }
        rows.put_all(puts.into_iter()).await.map_err(js_err)?;
        tx.store(META).map_err(js_err)?.put(&to_js(initial), Some(&"initial".into())).await.map_err(js_err)?;
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
