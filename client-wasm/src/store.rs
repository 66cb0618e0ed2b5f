//! The exported JS API: `createStore(options)` and the `Store` class. This file only moves data
//! between the WebSocket, IndexedDB, JS callbacks and [`ClientState`]; every decision is made by
//! `mishkah-core` through the state.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use js_sys::{Function, Promise};
use mishkah_core::query::Query;
use mishkah_core::{Action, RecordKey, Schema};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::inner::{Inner, Options, Shared, Status, Watcher};
use crate::interop::{error, from_js, now, to_js};
use crate::persist::Persist;
use crate::session::{
    adopt_orphans, after_change, call_all, emit_calls, fetch_schema, open_socket, set_status, watcher_calls,
};
use crate::state::{Access, Changed, ClientState};

/// A browser store for one branch module.
#[wasm_bindgen]
pub struct Store {
    inner: Shared,
}

/// Creates a store: `{branchId, moduleId, wsUrl | wsPath, httpUrl?, role, autoReconnect, useIndexedDB, dbName}`.
#[wasm_bindgen(js_name = createStore)]
pub fn create_store(#[wasm_bindgen(unchecked_param_type = "StoreOptions")] options: JsValue) -> Result<Store, JsValue> {
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
    let client = format!("{:x}{:x}", (js_sys::Math::random() * 1e15) as u64, (js_sys::Math::random() * 1e15) as u64);
    let mut state = ClientState::default();
    state.branch = Some(opts.branch_id.clone());
    if opts.subscriptions_only() {
        state.live = Some(crate::membership::Membership::default());
    }
    let inner = Inner {
        opts,
        ws_url,
        http_base,
        db_name,
        state,
        status: Status::Idle,
        ws: None,
        handlers: None,
        last_heard: 0.0,
        heartbeat: None,
        persist: None,
        listeners: HashMap::new(),
        watchers: Vec::new(),
        next_watcher: 1,
        waiters: HashMap::new(),
        sub_waiters: HashMap::new(),
        ready_waiters: Vec::new(),
        attempt: 0,
        counter: 0,
        tab,
        client,
        unsaved: Vec::new(),
        initial: false,
        walking: false,
        walked: None,
        finish_initial: false,
        ready_when_saved: false,
        replace_saved: false,
        save_scheduled: false,
        write_chain: None,
        watch_due: BTreeSet::new(),
        watching: false,
        release_tab_lock: None,
    };
    Ok(Store { inner: Rc::new(RefCell::new(inner)) })
}

/// What a synchronous read answers in a store that keeps its rows in IndexedDB.
fn not_held() -> JsValue {
    error(
        "not-held",
        "this store keeps its rows in IndexedDB (more of them than `memoryRows`): read them with find, count or get",
        Value::Null,
    )
}

/// A promise of what `read` gives, as a JS value.
fn read_promise<T: serde::Serialize + 'static>(
    read: impl std::future::Future<Output = Result<T, JsValue>> + 'static,
) -> Promise {
    wasm_bindgen_futures::future_to_promise(async move { read.await.map(|v| to_js(&v)) })
}

/// A query in either form: a filter string, or `{where, orderBy, limit, offset, fields}` whose
/// `where` is either form.
fn parse_query(query: JsValue) -> Result<Query, JsValue> {
    let value = match from_js(query)? {
        Value::String(filter) => json!({ "where": filter }),
        other => other,
    };
    Query::from_json(&value).map_err(|e| error(e.code(), &e.to_string(), Value::Null))
}

/// A key as JS gives it: text, or a number.
fn key_of(id: &JsValue) -> RecordKey {
    RecordKey(id.as_string().unwrap_or_else(|| id.as_f64().map(|n| n.to_string()).unwrap_or_default()))
}

impl Store {
    /// Every row of `table` as reads see them, when the store holds them all.
    fn held_rows(&self, table: &str) -> Result<Vec<mishkah_core::Row>, JsValue> {
        let inner = self.inner.borrow();
        if inner.state.partial {
            return Err(not_held());
        }
        Ok(inner.state.view_rows(table, now()))
    }
}

#[wasm_bindgen]
impl Store {
    /// Loads the IndexedDB cache (reads show it at once), then connects. Resolves when the cache
    /// is loaded and the connection is under way.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn connect(&self) -> Promise {
        let shared = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (use_idb, db_name, http_base, branch, module, token) = {
                let inner = shared.borrow();
                (
                    inner.opts.use_indexed_db.unwrap_or(true),
                    inner.db_name.clone(),
                    inner.http_base.clone(),
                    inner.opts.branch_id.clone(),
                    inner.opts.module_id.clone(),
                    inner.opts.token.clone(),
                )
            };
            if shared.borrow().release_tab_lock.is_none() {
                let tab = shared.borrow().tab.clone();
                shared.borrow_mut().release_tab_lock = crate::tabs::hold(&tab);
            }
            if use_idb && shared.borrow().persist.is_none() {
                let persist = Rc::new(Persist::open(&db_name).await?);
                let fresh = shared.borrow().client.clone();
                let client = persist.client_id(&fresh).await?;
                shared.borrow_mut().client = client;
                let in_memory = shared.borrow().opts.in_memory();
                let loaded = persist.load(in_memory).await?;
                let changed = {
                    let mut inner = shared.borrow_mut();
                    inner.persist = Some(persist);
                    inner.state.schema = loaded.schema.and_then(|s| serde_json::from_value::<Schema>(s).ok());
                    inner.state.access = loaded.access.as_ref().and_then(|a| Access::from_answer(&module, a));
                    for (table, key, row) in loaded.rows {
                        inner.state.confirmed.tables.entry(table).or_default().insert(key, row);
                    }
                    inner.state.confirmed.cursor = loaded.cursor;
                    inner.state.partial = loaded.partial;
                    if inner.opts.subscriptions_only() {
                        let cached = loaded.subs.and_then(|m| serde_json::from_value(m).ok());
                        inner.state.live = Some(cached.unwrap_or_default());
                    }
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
                crate::reads::refresh(&shared, &BTreeSet::new(), true);
            }
            if use_idb {
                adopt_orphans(&shared).await?;
            }
            if let Some(answer) = fetch_schema(&http_base, &branch, &module, token.as_deref()).await {
                let schema = answer["schema"].clone();
                if let Ok(parsed) = serde_json::from_value::<Schema>(schema.clone()) {
                    let access = json!({"rules": answer["rules"], "identity": answer["identity"]});
                    let persist = {
                        let mut inner = shared.borrow_mut();
                        inner.state.schema = Some(parsed);
                        inner.state.access = Access::from_answer(&module, &access);
                        inner.persist.clone()
                    };
                    if let Some(p) = persist {
                        let _ = p.save_schema(&schema).await;
                        let _ = p.save_access(&access).await;
                    }
                }
            }
            let unsynced = {
                let inner = shared.borrow();
                inner.persist.is_some() && !inner.opts.subscriptions_only() && inner.state.confirmed.cursor == 0
            };
            if unsynced && shared.borrow().ws.is_none() {
                // The walk goes on after `connect` resolves (`ready` waits for it).
                crate::first_sync::start(&shared, false);
            } else if shared.borrow().ws.is_none() && shared.borrow().status != Status::Closed {
                open_socket(&shared);
            }
            Ok(JsValue::TRUE)
        })
    }

    /// Resolves once the store holds server state (first snapshot or delta) — after a first sync,
    /// once IndexedDB holds it too, so a reload from then on starts with every row.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
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
            // The handlers are dropped below: the socket must not call them when it closes.
            ws.set_onopen(None);
            ws.set_onmessage(None);
            ws.set_onclose(None);
            ws.set_onerror(None);
            let _ = ws.close();
        }
        inner.handlers = None;
        inner.heartbeat = None;
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
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "StoreEvent")] event: String,
        #[wasm_bindgen(unchecked_param_type = "(payload: unknown) => void")] cb: Function,
    ) {
        self.inner.borrow_mut().listeners.entry(event).or_default().push(cb);
    }

    /// Stops listening.
    pub fn off(
        &self,
        #[wasm_bindgen(unchecked_param_type = "StoreEvent")] event: String,
        #[wasm_bindgen(unchecked_param_type = "(payload: unknown) => void")] cb: Function,
    ) {
        if let Some(list) = self.inner.borrow_mut().listeners.get_mut(&event) {
            list.retain(|f| f != &cb);
        }
    }

    /// Rows of a table: server state with pending writes applied. Synchronous, so only in a store
    /// that holds its rows in memory (`not-held` otherwise: use `find`).
    #[wasm_bindgen(js_name = listTable, unchecked_return_type = "Row[]")]
    pub fn list_table(&self, table: String) -> Result<JsValue, JsValue> {
        Ok(to_js(&self.held_rows(&table)?))
    }

    /// One row by key (synchronous: see `listTable`; `get` reads at any size).
    #[wasm_bindgen(js_name = getRecord, unchecked_return_type = "Row | null")]
    pub fn get_record(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Key")] id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let inner = self.inner.borrow();
        if inner.state.partial {
            return Err(not_held());
        }
        Ok(to_js(&inner.state.view_row(&table, &key_of(&id), now())))
    }

    /// `{where, orderBy, limit, offset, fields}` (`where` in either form of the filter language),
    /// or a filter string alone, over the table's rows (synchronous: see `listTable`; `find` reads
    /// at any size).
    #[wasm_bindgen(unchecked_return_type = "Row[]")]
    pub fn query(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue,
    ) -> Result<JsValue, JsValue> {
        let q = parse_query(query)?;
        Ok(to_js(&q.run(self.held_rows(&table)?.iter())))
    }

    /// The rows `query` selects (as `query` takes it), at any size: from memory, or through
    /// IndexedDB's chunks in a store that keeps more rows than `memoryRows`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Row[]>")]
    pub fn find(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_optional_param_type = "Query")] query: Option<JsValue>,
    ) -> Promise {
        let query = query.unwrap_or(JsValue::UNDEFINED);
        let q = match parse_query(query) {
            Ok(q) => q,
            Err(e) => return Promise::reject(&e),
        };
        let shared = self.inner.clone();
        read_promise(async move { crate::reads::find(&shared, &table, &q).await })
    }

    /// How many rows `query`'s filter selects, at any size (a filter on indexed fields is counted
    /// from the chunks' summaries, without reading rows).
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn count(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_optional_param_type = "Query")] query: Option<JsValue>,
    ) -> Promise {
        let query = query.unwrap_or(JsValue::UNDEFINED);
        let q = if query.is_undefined() || query.is_null() { Ok(Query::default()) } else { parse_query(query) };
        let q = match q {
            Ok(q) => q,
            Err(e) => return Promise::reject(&e),
        };
        let shared = self.inner.clone();
        read_promise(async move { crate::reads::count(&shared, &table, &q).await })
    }

    /// One row by key (`null` when there is none), at any size.
    #[wasm_bindgen(unchecked_return_type = "Promise<Row | null>")]
    pub fn get(&self, table: String, #[wasm_bindgen(unchecked_param_type = "Key")] id: JsValue) -> Promise {
        let key = key_of(&id);
        let shared = self.inner.clone();
        read_promise(async move { crate::reads::get(&shared, &table, &key).await })
    }

    /// Rows of `table` matching the text `q` as the server's search matches it (Arabic folded
    /// across tashkeel, hamza forms, ta marbuta and alef maqsura; the last word a prefix), from
    /// the rows held here: it works offline.
    #[wasm_bindgen(unchecked_return_type = "Row[]")]
    pub fn search(&self, table: String, q: String) -> Result<JsValue, JsValue> {
        let inner = self.inner.borrow();
        let Some(t) = inner.state.schema.as_ref().and_then(|s| s.table(&table)) else {
            return Ok(to_js(&Vec::<Value>::new()));
        };
        let terms = mishkah_core::search::query_terms(&q);
        if inner.state.partial {
            return Err(not_held());
        }
        let rows = inner.state.view_rows(&table, now());
        let hits: Vec<&mishkah_core::Row> =
            rows.iter().filter(|r| mishkah_core::search::matches_terms(t, r, &terms)).collect();
        Ok(to_js(&hits))
    }

    /// Calls `cb(rows)` now (in a store reading through IndexedDB, once the first answer is read)
    /// and whenever the query's result may have changed. Returns an unsubscribe function.
    #[wasm_bindgen(unchecked_return_type = "() => void")]
    pub fn watch(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue,
        #[wasm_bindgen(unchecked_param_type = "(rows: Row[]) => void")] cb: Function,
    ) -> Result<Function, JsValue> {
        let q = parse_query(query)?;
        let (id, first) = {
            let mut inner = self.inner.borrow_mut();
            let id = inner.next_watcher;
            inner.next_watcher += 1;
            let first = (!inner.state.partial).then(|| to_js(&q.run(inner.state.view_rows(&table, now()).iter())));
            inner.watchers.push(Watcher { id, table: table.clone(), query: q, cb: cb.clone() });
            (id, first)
        };
        match first {
            Some(rows) => call_all(vec![(cb, rows)]),
            None => crate::reads::refresh(&self.inner, &BTreeSet::from([table]), false),
        }
        let weak = Rc::downgrade(&self.inner);
        let unsubscribe = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.borrow_mut().watchers.retain(|w| w.id != id);
            }
        });
        Ok(unsubscribe.into_js_value().unchecked_into())
    }

    /// A live query: the server sends the rows of `table` that `query` selects (a filter string,
    /// or `{where, orderBy, limit, fields}`), then every change to that result. In a store opened
    /// with `{sync: "subscriptions"}` those are the only rows it holds (IndexedDB included): a row
    /// leaves when no subscription holds it any more (after `ttlMs`, when given). In a
    /// whole-module store every row is held already, and `ready` resolves at once.
    #[wasm_bindgen(unchecked_return_type = "Subscription")]
    pub fn subscribe(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Query")] query: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "SubscribeOptions")] options: Option<JsValue>,
    ) -> Result<JsValue, JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        let request = crate::live::live_request(&from_js(query)?)?;
        let ttl_ms = from_js(options).ok().and_then(|o| o.get("ttlMs").and_then(Value::as_f64));
        let sub_id = format!("{table}:{request}");
        let ready = {
            let mut inner = self.inner.borrow_mut();
            let cached = inner
                .state
                .live
                .as_ref()
                .and_then(|m| m.subs.get(&sub_id))
                .is_some_and(|s| s.cursor.is_some() && s.request == request);
            let Some(live) = inner.state.live.as_mut() else {
                let ready = Promise::resolve(&JsValue::TRUE);
                return Ok(crate::live::subscription_object(&sub_id, ready, Closure::<dyn FnMut()>::new(|| {})));
            };
            live.add(&sub_id, &table, request, ttl_ms);
            let mut settle = None;
            let ready = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
            if let Some((resolve, reject)) = settle {
                if cached {
                    let _ = resolve.call1(&JsValue::NULL, &JsValue::TRUE);
                } else {
                    inner.sub_waiters.entry(sub_id.clone()).or_default().push((resolve, reject));
                }
            }
            if inner.status == Status::Ready {
                if let Some(frame) = crate::session::subscribe_frame(&inner, &sub_id) {
                    crate::session::send(&inner, &frame);
                }
            }
            ready
        };
        let weak = Rc::downgrade(&self.inner);
        let id = sub_id.clone();
        let unsubscribe = Closure::<dyn FnMut()>::new(move || {
            let Some(shared) = weak.upgrade() else { return };
            let changed = {
                let mut inner = shared.borrow_mut();
                crate::session::send(&inner, &json!({"type": "client:unsubscribe", "subId": id}));
                inner.state.unsubscribe(&id, js_sys::Date::now())
            };
            after_change(&shared, changed, None);
            crate::live::schedule_expiry(&shared);
        });
        Ok(crate::live::subscription_object(&sub_id, ready, unsubscribe))
    }

    /// Inserts; resolves with the server's ack.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn insert(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::writes::write(&self.inner, Action::Insert, table, record, options)
    }

    /// Partial update of an existing row.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn update(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::writes::write(&self.inner, Action::Update, table, record, options)
    }

    /// Partial update of an existing row (`not-found` when absent).
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn merge(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::writes::write(&self.inner, Action::Merge, table, record, options)
    }

    /// Insert or merge.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn save(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::writes::write(&self.inner, Action::Save, table, record, options)
    }

    /// Deletes the row with the record's key.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn remove(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::writes::write(&self.inner, Action::Delete, table, record, options)
    }

    /// Runs `fn(tx)` (it may be async) as one transaction: `tx.get` reads rows, `tx.insert`,
    /// `tx.merge`... write; every write commits on the server together or none does, and only if
    /// each row first read still has the version read. Writes show at once, as the store's own.
    /// Online, a conflict runs `fn` again on fresh data (`{attempts}`, default 5), then rejects
    /// with `conflict`; queued offline, the server checks the reads when it comes back. Resolves
    /// with the server's answer (`{transactionId, results, ...}`) and what `fn` returned as `value`.
    #[wasm_bindgen(unchecked_return_type = "Promise<TransactionAck>")]
    pub fn transaction(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(tx: Tx) => unknown")] f: Function,
        #[wasm_bindgen(unchecked_optional_param_type = "TransactionOptions")] options: Option<JsValue>,
    ) -> Promise {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        crate::js_transaction::run(self.inner.clone(), f, options)
    }

    /// A new token for this store (before the old one expires, or on its `token-expired`
    /// event): sent at once as `client:auth` when connected, and used by every later hello.
    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(&self, token: String) {
        let mut inner = self.inner.borrow_mut();
        inner.opts.token = Some(token.clone());
        crate::session::send(&inner, &json!({"type": "client:auth", "token": token}));
    }

    /// `idle | connecting | open | ready | offline | closed`.
    #[wasm_bindgen(unchecked_return_type = "StoreStatus")]
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
    #[wasm_bindgen(js_name = deleteDatabase, unchecked_return_type = "Promise<boolean>")]
    pub fn delete_database(name: String) -> Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            Persist::delete(&name).await?;
            Ok(JsValue::TRUE)
        })
    }
}
