//! The exported JS API: `createStore(options)` and the `Store` class. This file only moves data
//! between the WebSocket, IndexedDB, JS callbacks and [`ClientState`]; every decision is made by
//! `mishkah-core` through the state.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use js_sys::{Function, Promise};
use mishkah_core::query::Query;
use mishkah_core::{Action, Mutation, RecordKey, Row, Schema};
use serde::Deserialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::backoff::backoff_ms;
use crate::interop::{error, from_js, now, to_js};
use crate::persist::Persist;
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    branch_id: String,
    module_id: String,
    #[serde(default)]
    ws_url: Option<String>,
    #[serde(default)]
    ws_path: Option<String>,
    #[serde(default)]
    http_url: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    auto_reconnect: Option<bool>,
    #[serde(default, alias = "useIndexedDb")]
    use_indexed_db: Option<bool>,
    #[serde(default)]
    db_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Idle,
    Connecting,
    Open,
    Ready,
    Offline,
    Closed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Connecting => "connecting",
            Status::Open => "open",
            Status::Ready => "ready",
            Status::Offline => "offline",
            Status::Closed => "closed",
        }
    }
}

struct Watcher {
    id: u32,
    table: String,
    query: Query,
    cb: Function,
}

type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(CloseEvent)>, Closure<dyn FnMut()>);

struct Inner {
    opts: Options,
    ws_url: String,
    http_base: String,
    db_name: String,
    state: ClientState,
    status: Status,
    ws: Option<WebSocket>,
    handlers: Option<Handlers>,
    persist: Option<Rc<Persist>>,
    listeners: HashMap<String, Vec<Function>>,
    watchers: Vec<Watcher>,
    next_watcher: u32,
    waiters: HashMap<String, (Function, Function)>,
    ready_waiters: Vec<Function>,
    attempt: u32,
    counter: u64,
    tab: String,
    unsaved: Vec<(String, RecordKey, Option<Row>)>,
    replace_saved: bool,
    save_scheduled: bool,
    /// Releases this tab's Web Lock (see `tabs`).
    release_tab_lock: Option<Function>,
}

type Shared = Rc<RefCell<Inner>>;

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
    let inner = Inner {
        opts,
        ws_url,
        http_base,
        db_name,
        state: ClientState::default(),
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

/// Calls JS callbacks after every borrow of the state is released (a callback may call back into
/// the store).
fn call_all(calls: Vec<(Function, JsValue)>) {
    for (f, arg) in calls {
        if let Err(e) = f.call1(&JsValue::NULL, &arg) {
            web_sys::console::error_2(&"mishkah: a callback threw".into(), &e);
        }
    }
}

fn emit_calls(inner: &Inner, event: &str, payload: JsValue) -> Vec<(Function, JsValue)> {
    inner.listeners.get(event).into_iter().flatten().map(|f| (f.clone(), payload.clone())).collect()
}

fn watcher_calls(inner: &Inner, tables: &BTreeSet<String>, all: bool) -> Vec<(Function, JsValue)> {
    let now = now();
    inner
        .watchers
        .iter()
        .filter(|w| all || tables.contains(&w.table))
        .map(|w| {
            let rows = inner.state.view_rows(&w.table, now);
            (w.cb.clone(), to_js(&w.query.run(rows.iter())))
        })
        .collect()
}

fn set_status(shared: &Shared, status: Status) {
    let calls = {
        let mut inner = shared.borrow_mut();
        if inner.status == status {
            return;
        }
        inner.status = status;
        let mut calls = emit_calls(&inner, "status", JsValue::from_str(status.as_str()));
        if status == Status::Ready {
            for f in inner.ready_waiters.drain(..) {
                calls.push((f, JsValue::TRUE));
            }
        }
        calls
    };
    call_all(calls);
}

fn send(inner: &Inner, frame: &Value) -> bool {
    match &inner.ws {
        Some(ws) if ws.ready_state() == WebSocket::OPEN => ws.send_with_str(&frame.to_string()).is_ok(),
        _ => false,
    }
}

fn publish_frame(inner: &Inner, p: &crate::state::Pending) -> Value {
    let mut frame = json!({
        "type": "client:publish", "moduleId": inner.opts.module_id, "table": p.mutation.table,
        "action": p.mutation.action.wire_name(), "record": p.mutation.record,
        "requestId": p.mutation_id, "mutationId": p.mutation_id, "includeRecord": true,
        "meta": {"mutationId": p.mutation_id, "tab": inner.tab},
    });
    if let Some(v) = p.mutation.expected_version {
        frame["expectedVersion"] = json!(v);
    }
    frame
}

/// Sends every pending write not yet sent on this connection, in order.
fn flush_outbox(shared: &Shared) {
    let mut inner = shared.borrow_mut();
    if inner.status != Status::Ready {
        return;
    }
    let frames: Vec<(usize, Value)> = inner
        .state
        .outbox
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.sent)
        .map(|(i, p)| (i, publish_frame(&inner, p)))
        .collect();
    for (i, frame) in frames {
        if !send(&inner, &frame) {
            break;
        }
        inner.state.outbox[i].sent = true;
    }
}

/// Queues confirmed-row changes for IndexedDB; one transaction per task turn.
fn save_later(shared: &Shared, changed: &Changed) {
    let persist = {
        let mut inner = shared.borrow_mut();
        if changed.replaced {
            inner.unsaved.clear();
            inner.replace_saved = true;
            let all: Vec<_> = inner
                .state
                .confirmed
                .tables
                .iter()
                .flat_map(|(t, rows)| rows.iter().map(move |(k, r)| (t.clone(), k.clone(), Some(r.clone()))))
                .collect();
            inner.unsaved.extend(all);
        } else {
            inner.unsaved.extend(changed.persist.iter().cloned());
        }
        if inner.save_scheduled {
            return;
        }
        let Some(p) = inner.persist.clone() else {
            inner.unsaved.clear();
            return;
        };
        inner.save_scheduled = true;
        p
    };
    let shared = shared.clone();
    spawn_local(async move {
        // Let the current burst of frames finish first, so they share one transaction.
        let _ = JsFuture::from(Promise::resolve(&JsValue::NULL)).await;
        let (batch, cursor, replace) = {
            let mut inner = shared.borrow_mut();
            inner.save_scheduled = false;
            let replace = std::mem::take(&mut inner.replace_saved);
            (std::mem::take(&mut inner.unsaved), inner.state.confirmed.cursor, replace)
        };
        if let Err(e) = persist.write_rows(batch, cursor, replace).await {
            web_sys::console::error_2(&"mishkah: could not persist rows".into(), &e);
        }
    });
}

fn after_change(shared: &Shared, changed: Changed, event: Option<(&str, JsValue)>) {
    save_later(shared, &changed);
    let calls = {
        let inner = shared.borrow();
        let mut calls = watcher_calls(&inner, &changed.tables, changed.replaced);
        if let Some((name, payload)) = event {
            calls.extend(emit_calls(&inner, name, payload));
        }
        calls
    };
    call_all(calls);
}

fn on_message(shared: &Shared, text: &str) {
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
    let module = shared.borrow().opts.module_id.clone();
    match frame["type"].as_str().unwrap_or_default() {
        "server:snapshot" => {
            let Some(m) = frame.pointer(&format!("/modules/{module}")) else { return };
            let changed = shared.borrow_mut().state.on_snapshot(m);
            after_change(
                shared,
                changed,
                Some(("snapshot", to_js(&json!({"source": "server", "version": m["version"]})))),
            );
            set_status(shared, Status::Ready);
            flush_outbox(shared);
        }
        "server:delta" if frame["moduleId"] == module.as_str() => {
            let changed = shared.borrow_mut().state.on_delta(&frame);
            after_change(
                shared,
                changed,
                Some(("snapshot", to_js(&json!({"source": "delta", "from": frame["from"], "to": frame["to"]})))),
            );
            set_status(shared, Status::Ready);
            flush_outbox(shared);
        }
        "server:event" if frame["moduleId"] == module.as_str() => {
            let sequence = frame["sequence"].as_u64().unwrap_or(0);
            let changed = {
                let mut inner = shared.borrow_mut();
                if sequence <= inner.state.confirmed.cursor {
                    return; // already in the snapshot or delta we applied
                }
                let changed = inner.state.on_commit(&frame);
                inner.state.advance(sequence);
                changed
            };
            let mut changed = changed;
            changed.tables.insert(frame["table"].as_str().unwrap_or_default().to_owned());
            after_change(shared, changed, Some(("event", to_js(&frame))));
        }
        "server:ack" => {
            let Some(id) = frame["mutationId"].as_str().or(frame["requestId"].as_str()).map(str::to_owned) else {
                return;
            };
            let (changed, waiter, persist, seq) = {
                let mut inner = shared.borrow_mut();
                let settled = inner.state.settle(&id);
                let mut changed = inner.state.on_commit(&frame);
                changed.tables.insert(frame["table"].as_str().unwrap_or_default().to_owned());
                (changed, inner.waiters.remove(&id), inner.persist.clone(), settled.map(|p| p.seq))
            };
            if let (Some(p), Some(seq)) = (persist, seq) {
                spawn_local(async move {
                    let _ = p.delete_pending(seq).await;
                });
            }
            let payload = to_js(&frame);
            after_change(shared, changed, Some(("ack", payload.clone())));
            if let Some((resolve, _)) = waiter {
                call_all(vec![(resolve, payload)]);
            }
        }
        "server:error" => on_error(shared, &frame),
        _ => {}
    }
}

fn on_error(shared: &Shared, frame: &Value) {
    let code = frame["code"].as_str().unwrap_or("error").to_owned();
    let message = frame["message"].as_str().unwrap_or("error").to_owned();
    let id = frame["mutationId"].as_str().or(frame["requestId"].as_str()).map(str::to_owned);
    let (settled, waiter, persist) = {
        let mut inner = shared.borrow_mut();
        match &id {
            Some(id) => (inner.state.settle(id), inner.waiters.remove(id), inner.persist.clone()),
            None => (None, None, None),
        }
    };
    if let (Some(p), Some(pending)) = (persist, &settled) {
        let seq = pending.seq;
        spawn_local(async move {
            let _ = p.delete_pending(seq).await;
        });
    }
    let mut payload = json!({"code": code, "message": message, "details": frame["details"], "mutationId": id});
    if let Some(p) = &settled {
        let inner = shared.borrow();
        let table = inner.state.schema.as_ref().and_then(|s| s.table(&p.mutation.table)).cloned();
        let current = table
            .and_then(|t| RecordKey::of(&t, &p.mutation.record).ok())
            .and_then(|k| inner.state.confirmed.get(&p.mutation.table, &k).cloned());
        payload["table"] = json!(p.mutation.table);
        payload["record"] = json!(p.mutation.record);
        payload["current"] = json!(current);
    }
    let event = if code == "version-conflict" { "conflict" } else { "error" };
    let mut changed = Changed::default();
    if let Some(p) = &settled {
        changed.tables.insert(p.mutation.table.clone());
    }
    after_change(shared, changed, Some((event, to_js(&payload))));
    if let Some((_, reject)) = waiter {
        call_all(vec![(reject, error(&code, &message, payload))]);
    }
}

fn open_socket(shared: &Shared) {
    let url = shared.borrow().ws_url.clone();
    set_status(shared, Status::Connecting);
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            schedule_reconnect(shared);
            return;
        }
    };
    let weak = Rc::downgrade(shared);
    let on_msg = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let (Some(shared), Some(text)) = (weak.upgrade(), e.data().as_string()) {
            on_message(&shared, &text);
        }
    });
    let weak = Rc::downgrade(shared);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_e: CloseEvent| {
        if let Some(shared) = weak.upgrade() {
            on_closed(&shared);
        }
    });
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut()>::new(move || {
        if let Some(shared) = weak.upgrade() {
            on_opened(&shared);
        }
    });
    ws.set_onmessage(Some(on_msg.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    let mut inner = shared.borrow_mut();
    inner.ws = Some(ws);
    inner.handlers = Some((on_msg, on_close, on_open));
}

fn on_opened(shared: &Shared) {
    set_status(shared, Status::Open);
    let inner = &mut *shared.borrow_mut();
    inner.attempt = 0;
    let mut hello = json!({"type": "client:hello", "branchId": inner.opts.branch_id, "role": inner.opts.role.clone().unwrap_or_else(|| "client".into()), "requestSnapshot": true});
    if inner.state.confirmed.cursor > 0 && inner.state.schema.is_some() {
        hello["cursor"] = json!({ inner.opts.module_id.clone(): inner.state.confirmed.cursor });
    }
    send(inner, &hello);
}

fn on_closed(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        inner.ws = None;
        for p in &mut inner.state.outbox {
            p.sent = false;
        }
        if inner.status == Status::Closed {
            return;
        }
    }
    set_status(shared, Status::Offline);
    schedule_reconnect(shared);
}

fn schedule_reconnect(shared: &Shared) {
    let (delay, enabled) = {
        let mut inner = shared.borrow_mut();
        let delay = backoff_ms(inner.attempt, js_sys::Math::random());
        inner.attempt = inner.attempt.saturating_add(1);
        (delay, inner.opts.auto_reconnect.unwrap_or(true) && inner.status != Status::Closed)
    };
    if !enabled {
        return;
    }
    let weak = Rc::downgrade(shared);
    let retry = Closure::once_into_js(move || {
        if let Some(shared) = weak.upgrade() {
            if shared.borrow().status != Status::Closed {
                open_socket(&shared);
            }
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(retry.unchecked_ref(), delay as i32);
    }
}

/// Takes over the outbox entries of tabs that are gone (their Web Lock is no longer held) and
/// leaves live tabs' entries to them: each pending write has exactly one sender.
async fn adopt_orphans(shared: &Shared) -> Result<(), JsValue> {
    let (persist, tab) = {
        let inner = shared.borrow();
        (inner.persist.clone(), inner.tab.clone())
    };
    let Some(persist) = persist else { return Ok(()) };
    let live = crate::tabs::live_tabs().await;
    let stored = persist.load().await?.outbox;
    let mut adopted = Vec::new();
    for mut p in stored {
        let owner_alive = p.tab != tab && live.as_ref().is_some_and(|l| l.contains(&p.tab));
        if owner_alive || shared.borrow().state.outbox.iter().any(|q| q.mutation_id == p.mutation_id) {
            continue;
        }
        p.tab = tab.clone();
        p.sent = false;
        persist.put_pending(&p).await?;
        adopted.push(p);
    }
    if !adopted.is_empty() {
        let mut inner = shared.borrow_mut();
        inner.state.outbox.extend(adopted);
        inner.state.outbox.sort_by(|a, b| a.seq.total_cmp(&b.seq));
    }
    Ok(())
}

async fn fetch_schema(http_base: &str, branch: &str, module: &str) -> Option<Value> {
    let window = web_sys::window()?;
    let url = format!(
        "{http_base}/api/branches/{}/modules/{}/schema",
        js_sys::encode_uri_component(branch),
        js_sys::encode_uri_component(module)
    );
    let response: web_sys::Response = JsFuture::from(window.fetch_with_str(&url)).await.ok()?.dyn_into().ok()?;
    if !response.ok() {
        return None;
    }
    let body = JsFuture::from(response.json().ok()?).await.ok()?;
    from_js(body).ok().map(|v| v["schema"].clone())
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
