//! IndexedDB persistence (through `rexie`): confirmed rows (in chunks: [`crate::chunked`]), the sync
//! cursor, the schema and the outbox. Writes are batched: one transaction per flush, never one per
//! row.

use std::collections::BTreeMap;

use mishkah_core::{RecordKey, Row, Schema};
use rexie::{ObjectStore, Rexie, TransactionMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use wasm_bindgen::JsValue;

use crate::interop::{from_js, to_js};
use crate::state::Pending;

use crate::chunked::{self, CHUNKS, SUMMARIES};

const META: &str = "meta";
const OUTBOX: &str = "outbox";
/// How rows are kept: 2 is in chunks. A database of layout 1 (a record per row, dropped by the
/// upgrade) keeps its outbox and client id, and syncs its rows again.
const LAYOUT: f64 = 2.0;

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
    /// `(table, key, row)`.
    pub rows: Vec<(String, RecordKey, Row)>,
    /// Pending writes.
    pub outbox: Vec<Pending>,
    /// `{sync: "subscriptions"}`: which live query holds which row.
    pub subs: Option<Value>,
    /// The schema route's `{rules, identity}`, for checking writes offline.
    pub access: Option<Value>,
    /// A first sync under way (its rows are held back: they are not yet the module at any one
    /// sequence).
    pub initial: Option<Initial>,
    /// More rows are stored than the store keeps in memory: `rows` is empty and reads go to
    /// IndexedDB.
    pub partial: bool,
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

fn js_err(e: rexie::Error) -> JsValue {
    crate::interop::error("indexeddb", &e.to_string(), Value::Null)
}

fn initial_of(stored: JsValue) -> Result<Initial, JsValue> {
    serde_json::from_value(from_js(stored)?)
        .map_err(|e| crate::interop::error("indexeddb", &e.to_string(), Value::Null))
}

impl Persist {
    /// Opens (creating) the database `name`.
    pub async fn open(name: &str) -> Result<Persist, JsValue> {
        let db = Rexie::builder(name)
            .version(2)
            .add_object_store(ObjectStore::new(CHUNKS))
            .add_object_store(ObjectStore::new(SUMMARIES))
            .add_object_store(ObjectStore::new(META))
            .add_object_store(ObjectStore::new(OUTBOX))
            .build()
            .await
            .map_err(js_err)?;
        let persist = Persist { db };
        persist.settle_layout().await?;
        Ok(persist)
    }

    /// A database whose rows were kept another way has none now: it forgets where they stood.
    async fn settle_layout(&self) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[META], TransactionMode::ReadWrite).map_err(js_err)?;
        let meta = tx.store(META).map_err(js_err)?;
        if meta.get("layout".into()).await.map_err(js_err)?.and_then(|v| v.as_f64()) != Some(LAYOUT) {
            for key in ["cursor", "initial", "subs"] {
                meta.delete(key.into()).await.map_err(js_err)?;
            }
            meta.put(&JsValue::from_f64(LAYOUT), Some(&"layout".into())).await.map_err(js_err)?;
        }
        tx.done().await.map_err(js_err)?;
        Ok(())
    }

    /// Everything cached, in one read transaction: the rows too when there are no more than
    /// `in_memory`.
    pub async fn load(&self, in_memory: u64) -> Result<Loaded, JsValue> {
        let tx = self.db.transaction(&[CHUNKS, SUMMARIES, META, OUTBOX], TransactionMode::ReadOnly).map_err(js_err)?;
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
            loaded.partial = chunked::count_all(&tx).await? > in_memory;
            if !loaded.partial {
                loaded.rows = chunked::read_all(&tx).await?;
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
        schema: Option<&Schema>,
    ) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[CHUNKS, SUMMARIES, META], TransactionMode::ReadWrite).map_err(js_err)?;
        if replace {
            chunked::clear(&tx).await?;
        }
        let mut by_table: BTreeMap<String, Vec<(String, Option<Row>)>> = BTreeMap::new();
        for (table, key, row) in changes {
            by_table.entry(table).or_default().push((key.0, row));
        }
        for (table, changes) in by_table {
            chunked::apply(&tx, &table, schema.and_then(|s| s.table(&table)), changes).await?;
        }
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
    pub async fn rows(&self) -> Result<Vec<(String, RecordKey, Row)>, JsValue> {
        let tx = self.db.transaction(&[CHUNKS], TransactionMode::ReadOnly).map_err(js_err)?;
        let rows = chunked::read_all(&tx).await?;
        tx.done().await.map_err(js_err)?;
        Ok(rows)
    }

    /// How many rows are stored (from the chunks' summaries).
    pub async fn count(&self) -> Result<u64, JsValue> {
        let tx = self.reading()?;
        let rows = chunked::count_all(&tx).await?;
        tx.done().await.map_err(js_err)?;
        Ok(rows)
    }

    /// A read-only transaction over the stored rows ([`crate::chunked`]'s reads).
    pub(crate) fn reading(&self) -> Result<rexie::Transaction, JsValue> {
        self.db.transaction(&[CHUNKS, SUMMARIES], TransactionMode::ReadOnly).map_err(js_err)
    }

    /// Starts a first sync from nothing: the rows go, and until it finishes none is shown.
    pub async fn begin_initial(&self) -> Result<Initial, JsValue> {
        let tx = self.db.transaction(&[CHUNKS, SUMMARIES, META], TransactionMode::ReadWrite).map_err(js_err)?;
        chunked::clear(&tx).await?;
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
    pub async fn write_page(&self, page: &JsValue, initial: &Initial, schema: Option<&Schema>) -> Result<(), JsValue> {
        let tx = self.db.transaction(&[CHUNKS, SUMMARIES, META], TransactionMode::ReadWrite).map_err(js_err)?;
        chunked::put_page(&tx, page, schema).await?;
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
