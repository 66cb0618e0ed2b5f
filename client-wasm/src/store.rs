//! The exported JS API: `createStore(options)` and the `Store` class. This file only moves data
//! between the WebSocket, IndexedDB, JS callbacks and [`ClientState`]; every decision is made by
//! `mishkah-core` through the state.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use js_sys::{Function, Promise};
use mishkah_core::query::Query;
use mishkah_core::{Action, Mutation, RecordKey, Schema};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;

use crate::inner::{Inner, Options, Shared, Status, Watcher};
use crate::interop::{error, from_js, now, to_js};
use crate::persist::Persist;
use crate::session::{
    adopt_orphans, after_change, call_all, emit_calls, fetch_schema, flush_outbox, open_socket, set_status,
    watcher_calls,
};
use crate::state::{Changed, ClientState};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Options of `createStore`. */
export interface StoreOptions {
  branchId: string;
  moduleId: string;
  /** Full WebSocket URL; or `wsPath` on the page's host (default `/ws`). */
  wsUrl?: string;
  wsPath?: string;
  /** Base URL of the REST API (schema); defaults to the WebSocket's host. */
  httpUrl?: string;
  role?: string;
  autoReconnect?: boolean;
  useIndexedDB?: boolean;
  dbName?: string;
}
export type StoreStatus = "idle" | "connecting" | "open" | "ready" | "offline" | "closed";
export type StoreEvent = "status" | "snapshot" | "event" | "ack" | "conflict" | "error";
/** `{where: {field: value | {op: value}, and?: [...], or?: [...]}, orderBy?: ["field", "-field"], limit?, offset?, fields?}` */
export interface Query { where?: Record<string, unknown>; orderBy?: string | string[]; limit?: number; offset?: number; fields?: string[] }
/** Write options: the version the caller last saw (our clients' unambiguous form). */
export interface WriteOptions { expectedVersion?: number }
/** Rejections carry a stable `code` (`version-conflict`, `validation-failed`, `not-found`...) and `details`. */
export interface StoreError extends Error { code: string; details: unknown }
"#;

/// A browser store for one branch module.
#[wasm_bindgen]
pub struct Store {
    inner: Shared,
}

/// Creates a store: `{branchId, moduleId, wsUrl | wsPath, httpUrl?, role, autoReconnect, useIndexedDB, dbName}`.
#[wasm_bindgen(js_name = createStore)]
pub fn create_store(options: JsValue) -> Result<Store, JsValue> {
    let opts: Options =
        serde_wasm_bindgen::from_value(options).map_err(|e| error("invalid-options", &e.to_string(), Value::Null))?;
    let location = web_sys::window().map(|w| w.location());
    let host = location.as_ref().and_then(|l| l.host().ok()).unwrap_or_default();
    let secure = location.as_ref().and_then(|l| l.protocol().ok()).is_some_and(|p| p == "https:");
    let ws_url = match (&opts.ws_url, &opts.ws_path) {
        (Some(url), _) => url.clone(),
        (None, path) => format!("{}://{host}{}", if secure { "wss" } else { "ws" }, path.as_deref().unwrap_or("/ws")),
    };
    let http_base = opts.http_url.clone().unwrap_or_else(|| {
        let rest = ws_url
            .strip_prefix("wss://")
            .map(|r| ("https", r))
            .or_else(|| ws_url.strip_prefix("ws://").map(|r| ("http", r)));
        match rest {
            Some((scheme, r)) => format!("{scheme}://{}", r.split('/').next().unwrap_or(r)),
            None => String::new(),
        }
    });
    let db_name = opts.db_name.clone().unwrap_or_else(|| format!("mishkah:{}:{}", opts.branch_id, opts.module_id));
    let tab = format!("{:x}", (js_sys::Math::random() * 1e12) as u64);
    let mut state = ClientState::default();
    state.branch = Some(opts.branch_id.clone());
    let inner = Inner {
        opts,
        ws_url,
        http_base,
        db_name,
        state,
        status: Status::Idle,
        ws: None,
        handlers: None,
        persist: None,
        listeners: HashMap::new(),
        watchers: Vec::new(),
        next_watcher: 1,
        waiters: HashMap::new(),
        ready_waiters: Vec::new(),
        attempt: 0,
        counter: 0,
        tab,
        unsaved: Vec::new(),
        replace_saved: false,
        save_scheduled: false,
        release_tab_lock: None,
    };
    Ok(Store { inner: Rc::new(RefCell::new(inner)) })
}

impl Store {
    fn write(&self, action: Action, table: String, record: JsValue, options: JsValue) -> Promise {
        let record = match from_js(record) {
            Ok(Value::Object(r)) => r,
            Ok(_) => return Promise::reject(&error("invalid-argument", "a record is an object", Value::Null)),
            Err(e) => return Promise::reject(&e),
        };
        let options = from_js(options).unwrap_or(Value::Null);
        let (pending, persist) = {
            let mut inner = self.inner.borrow_mut();
            let mut m = Mutation { table: table.clone(), action, record, expected_version: None, mutation_id: None };
            m.expected_version = options.get("expectedVersion").and_then(Value::as_i64);
            if m.expected_version.is_none() && action != Action::Insert && is_versioned(&table) {
                // Our clients always say which version they saw: the current view's.
                let key = inner
                    .state
                    .schema
                    .as_ref()
                    .and_then(|s| s.table(&table))
                    .and_then(|t| RecordKey::of(t, &m.record).ok());
                if let Some(row) = key.and_then(|k| inner.state.view_row(&table, &k, now())) {
                    m.expected_version = Some(mishkah_core::mutation::row_version(&row));
                }
            }
            inner.counter += 1;
            let id = format!("{}-{}-{}", inner.tab, js_sys::Date::now() as u64, inner.counter);
            let seq = js_sys::Date::now() * 1000.0 + (inner.counter % 1000) as f64;
            match inner.state.enqueue(m, id, seq, now()) {
                Ok(mut p) => {
                    let tab = inner.tab.clone();
                    if let Some(queued) = inner.state.outbox.iter_mut().find(|q| q.mutation_id == p.mutation_id) {
                        queued.tab = tab.clone();
                    }
                    p.tab = tab;
                    (p, inner.persist.clone())
                }
                Err(e) => {
                    let details = json!({"table": table});
                    return Promise::reject(&error(e.code(), &e.to_string(), details));
                }
            }
        };
        let id = pending.mutation_id.clone();
        let inner = self.inner.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            inner.borrow_mut().waiters.insert(id.clone(), (resolve, reject));
        });
        let mut changed = Changed::default();
        changed.tables.insert(table);
        after_change(&self.inner, changed, None);
        let shared = self.inner.clone();
        spawn_local(async move {
            // Durable first: a write is in the outbox before it is ever sent.
            if let Some(p) = persist {
                if let Err(e) = p.put_pending(&pending).await {
                    web_sys::console::error_2(&"mishkah: could not persist a pending write".into(), &e);
                }
            }
            flush_outbox(&shared);
        });
        promise
    }
}

fn is_versioned(table: &str) -> bool {
    mishkah_core::VersionPolicy::default().requires_version(table)
}

#[wasm_bindgen]
impl Store {
    /// Loads the IndexedDB cache (reads show it at once), then connects. Resolves when the cache
    /// is loaded and the connection is under way.
    pub fn connect(&self) -> Promise {
        let shared = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (use_idb, db_name, http_base, branch, module) = {
                let inner = shared.borrow();
                (
                    inner.opts.use_indexed_db.unwrap_or(true),
                    inner.db_name.clone(),
                    inner.http_base.clone(),
                    inner.opts.branch_id.clone(),
                    inner.opts.module_id.clone(),
                )
            };
            if shared.borrow().release_tab_lock.is_none() {
                let tab = shared.borrow().tab.clone();
                shared.borrow_mut().release_tab_lock = crate::tabs::hold(&tab);
            }
            if use_idb && shared.borrow().persist.is_none() {
                let persist = Rc::new(Persist::open(&db_name).await?);
                let loaded = persist.load().await?;
                let changed = {
                    let mut inner = shared.borrow_mut();
                    inner.persist = Some(persist);
                    inner.state.schema = loaded.schema.and_then(|s| serde_json::from_value::<Schema>(s).ok());
                    for (table, row) in loaded.rows {
                        let t = inner.state.schema.as_ref().and_then(|s| s.table(&table)).cloned();
                        let key = t.and_then(|t| RecordKey::of(&t, &row).ok()).or_else(|| {
                            row.get("id")
                                .map(|v| RecordKey(v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                        });
                        if let Some(key) = key {
                            inner.state.confirmed.tables.entry(table).or_default().insert(key, row);
                        }
                    }
                    inner.state.confirmed.cursor = loaded.cursor;
                    let tables: BTreeSet<String> = inner.state.confirmed.tables.keys().cloned().collect();
                    Changed { tables, ..Changed::default() }
                };
                let calls = {
                    let inner = shared.borrow();
                    let mut calls = watcher_calls(&inner, &changed.tables, true);
                    calls.extend(emit_calls(
                        &inner,
                        "snapshot",
                        to_js(&json!({"source": "cache", "version": inner.state.confirmed.cursor})),
                    ));
                    calls
                };
                call_all(calls);
            }
            if use_idb {
                adopt_orphans(&shared).await?;
            }
            if let Some(schema) = fetch_schema(&http_base, &branch, &module).await {
                if let Ok(parsed) = serde_json::from_value::<Schema>(schema.clone()) {
                    let persist = {
                        let mut inner = shared.borrow_mut();
                        inner.state.schema = Some(parsed);
                        inner.persist.clone()
                    };
                    if let Some(p) = persist {
                        let _ = p.save_schema(&schema).await;
                    }
                }
            }
            if shared.borrow().ws.is_none() && shared.borrow().status != Status::Closed {
                open_socket(&shared);
            }
            Ok(JsValue::TRUE)
        })
    }

    /// Resolves once the store holds server state (first snapshot or delta).
    pub fn ready(&self) -> Promise {
        let inner = self.inner.clone();
        Promise::new(&mut |resolve, _reject| {
            let mut i = inner.borrow_mut();
            if i.status == Status::Ready {
                let _ = resolve.call1(&JsValue::NULL, &JsValue::TRUE);
            } else {
                i.ready_waiters.push(resolve);
            }
        })
    }

    /// Closes the connection and the database; pending writes stay in IndexedDB.
    pub fn close(&self) {
        set_status(&self.inner, Status::Closed);
        let mut inner = self.inner.borrow_mut();
        if let Some(ws) = inner.ws.take() {
            let _ = ws.close();
        }
        inner.handlers = None;
        if let Some(release) = inner.release_tab_lock.take() {
            let _ = release.call0(&JsValue::NULL);
        }
        if let Some(p) = inner.persist.take() {
            if let Ok(p) = Rc::try_unwrap(p) {
                p.close();
            }
        }
    }

    /// Listens to `status`, `snapshot`, `event`, `ack`, `conflict` or `error`.
    pub fn on(&self, event: String, cb: Function) {
        self.inner.borrow_mut().listeners.entry(event).or_default().push(cb);
    }

    /// Stops listening.
    pub fn off(&self, event: String, cb: Function) {
        if let Some(list) = self.inner.borrow_mut().listeners.get_mut(&event) {
            list.retain(|f| f != &cb);
        }
    }

    /// Rows of a table: server state with pending writes applied.
    #[wasm_bindgen(js_name = listTable)]
    pub fn list_table(&self, table: String) -> JsValue {
        to_js(&self.inner.borrow().state.view_rows(&table, now()))
    }

    /// One row by key.
    #[wasm_bindgen(js_name = getRecord)]
    pub fn get_record(&self, table: String, id: JsValue) -> JsValue {
        let key = id.as_string().unwrap_or_else(|| id.as_f64().map(|n| n.to_string()).unwrap_or_default());
        to_js(&self.inner.borrow().state.view_row(&table, &RecordKey(key), now()))
    }

    /// `{where, orderBy, limit, offset, fields}` over the table's rows.
    pub fn query(&self, table: String, query: JsValue) -> Result<JsValue, JsValue> {
        let q = Query::from_json(&from_js(query)?).map_err(|e| error(e.code(), &e.to_string(), Value::Null))?;
        let rows = self.inner.borrow().state.view_rows(&table, now());
        Ok(to_js(&q.run(rows.iter())))
    }

    /// Rows of `table` matching the text `q` as the server's search matches it (Arabic folded
    /// across tashkeel, hamza forms, ta marbuta and alef maqsura; the last word a prefix), from
    /// the rows held here: it works offline.
    pub fn search(&self, table: String, q: String) -> JsValue {
        let inner = self.inner.borrow();
        let Some(t) = inner.state.schema.as_ref().and_then(|s| s.table(&table)) else {
            return to_js(&Vec::<Value>::new());
        };
        let terms = mishkah_core::search::query_terms(&q);
        let rows = inner.state.view_rows(&table, now());
        let hits: Vec<&mishkah_core::Row> =
            rows.iter().filter(|r| mishkah_core::search::matches_terms(t, r, &terms)).collect();
        to_js(&hits)
    }

    /// Calls `cb(rows)` now and whenever the query's result may have changed. Returns an
    /// unsubscribe function.
    pub fn watch(&self, table: String, query: JsValue, cb: Function) -> Result<Function, JsValue> {
        let q = Query::from_json(&from_js(query)?).map_err(|e| error(e.code(), &e.to_string(), Value::Null))?;
        let (id, first) = {
            let mut inner = self.inner.borrow_mut();
            let id = inner.next_watcher;
            inner.next_watcher += 1;
            let rows = inner.state.view_rows(&table, now());
            let first = to_js(&q.run(rows.iter()));
            inner.watchers.push(Watcher { id, table, query: q, cb: cb.clone() });
            (id, first)
        };
        call_all(vec![(cb, first)]);
        let weak = Rc::downgrade(&self.inner);
        let unsubscribe = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.borrow_mut().watchers.retain(|w| w.id != id);
            }
        });
        Ok(unsubscribe.into_js_value().unchecked_into())
    }

    /// Inserts; resolves with the server's ack.
    pub fn insert(&self, table: String, record: JsValue, options: JsValue) -> Promise {
        self.write(Action::Insert, table, record, options)
    }

    /// Partial update of an existing row.
    pub fn update(&self, table: String, record: JsValue, options: JsValue) -> Promise {
        self.write(Action::Update, table, record, options)
    }

    /// Partial update of an existing row (`not-found` when absent).
    pub fn merge(&self, table: String, record: JsValue, options: JsValue) -> Promise {
        self.write(Action::Merge, table, record, options)
    }

    /// Insert or merge.
    pub fn save(&self, table: String, record: JsValue, options: JsValue) -> Promise {
        self.write(Action::Save, table, record, options)
    }

    /// Deletes the row with the record's key.
    pub fn remove(&self, table: String, record: JsValue, options: JsValue) -> Promise {
        self.write(Action::Delete, table, record, options)
    }

    /// `idle | connecting | open | ready | offline | closed`.
    pub fn status(&self) -> String {
        self.inner.borrow().status.as_str().to_owned()
    }

    /// Number of writes waiting for the server.
    pub fn pending(&self) -> usize {
        self.inner.borrow().state.outbox.len()
    }

    /// The last server sequence this store has applied.
    pub fn cursor(&self) -> f64 {
        self.inner.borrow().state.confirmed.cursor as f64
    }

    /// Deletes a store's IndexedDB database (tests, "forget this device").
    #[wasm_bindgen(js_name = deleteDatabase)]
    pub fn delete_database(name: String) -> Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            Persist::delete(&name).await?;
            Ok(JsValue::TRUE)
        })
    }
}
