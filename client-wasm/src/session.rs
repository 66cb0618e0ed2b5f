//! The connection side of the store: the WebSocket and its reconnects, incoming frames, the outbox
//! flush, IndexedDB batching, and calling JS back (never while the state is borrowed).

use std::collections::BTreeSet;
use std::rc::Rc;

use js_sys::{Function, Promise};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::backoff::backoff_ms;
use crate::inner::{Inner, Shared, Status};
use crate::interop::{error, from_js, now, to_js};
use crate::state::Changed;
use mishkah_core::RecordKey;

/// Calls JS callbacks after every borrow of the state is released (a callback may call back into
/// the store).
pub(crate) fn call_all(calls: Vec<(Function, JsValue)>) {
    for (f, arg) in calls {
        if let Err(e) = f.call1(&JsValue::NULL, &arg) {
            web_sys::console::error_2(&"mishkah: a callback threw".into(), &e);
        }
    }
}

pub(crate) fn emit_calls(inner: &Inner, event: &str, payload: JsValue) -> Vec<(Function, JsValue)> {
    inner.listeners.get(event).into_iter().flatten().map(|f| (f.clone(), payload.clone())).collect()
}

/// The answers of watchers of `tables` (all with `all`) of a store holding its rows in memory (a
/// partial store answers them later: [`crate::reads::refresh`]).
pub(crate) fn watcher_calls(inner: &Inner, tables: &BTreeSet<String>, all: bool) -> Vec<(Function, JsValue)> {
    if inner.state.partial {
        return Vec::new();
    }
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

pub(crate) fn set_status(shared: &Shared, status: Status) {
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

pub(crate) fn send(inner: &Inner, frame: &Value) -> bool {
    match &inner.ws {
        Some(ws) if ws.ready_state() == WebSocket::OPEN => ws.send_with_str(&frame.to_string()).is_ok(),
        _ => false,
    }
}

pub(crate) fn publish_frame(inner: &Inner, p: &crate::state::Pending) -> Value {
    if let Some(t) = &p.transaction {
        let writes: Vec<Value> = t
            .writes
            .iter()
            .map(|m| {
                json!({"action": m.action.wire_name(), "table": m.table, "record": m.record,
                       "expectedVersion": m.expected_version})
            })
            .collect();
        return json!({"type": "client:transaction", "moduleId": inner.opts.module_id, "requestId": p.mutation_id,
                      "mutationId": p.mutation_id, "reads": t.reads, "writes": writes, "includeRecords": true});
    }
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
pub(crate) fn flush_outbox(shared: &Shared) {
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
pub(crate) fn save_later(shared: &Shared, changed: &Changed) {
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
        let (batch, cursor, replace, subs, finish, schema) = {
            let mut inner = shared.borrow_mut();
            inner.save_scheduled = false;
            let replace = std::mem::take(&mut inner.replace_saved);
            let finish = std::mem::take(&mut inner.finish_initial);
            let subs = inner.state.live.as_ref().and_then(|m| serde_json::to_value(m).ok());
            let schema = inner.state.schema.clone();
            (std::mem::take(&mut inner.unsaved), inner.state.confirmed.cursor, replace, subs, finish, schema)
        };
        match persist.write_rows(batch, cursor, replace, subs, finish, schema.as_ref()).await {
            Ok(()) => {
                // Saved: a partial store lets go of what it held only until now.
                let inner = &mut *shared.borrow_mut();
                let unsaved: BTreeSet<(&str, &RecordKey)> =
                    inner.unsaved.iter().map(|(t, k, _)| (t.as_str(), k)).collect();
                inner.state.trim(|t, k| unsaved.contains(&(t, k)));
            }
            Err(e) => web_sys::console::error_2(&"mishkah: could not persist rows".into(), &e),
        }
        // The first sync's last save is done (or failed, and the rows are in memory all the same):
        // ready, unless the socket went meanwhile.
        let ready = finish && std::mem::take(&mut shared.borrow_mut().ready_when_saved);
        if ready && shared.borrow().status == Status::Open {
            set_status(&shared, Status::Ready);
            flush_outbox(&shared);
        }
    });
}

pub(crate) fn after_change(shared: &Shared, changed: Changed, event: Option<(&str, JsValue)>) {
    save_later(shared, &changed);
    crate::reads::refresh(shared, &changed.tables, changed.replaced);
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

pub(crate) fn on_message(shared: &Shared, text: &str) {
    shared.borrow_mut().last_heard = js_sys::Date::now();
    let Ok(frame) = serde_json::from_str::<Value>(text) else { return };
    let module = shared.borrow().opts.module_id.clone();
    match frame["type"].as_str().unwrap_or_default() {
        "server:snapshot" => {
            let Some(m) = frame.pointer(&format!("/modules/{module}")) else { return };
            let changed = {
                let mut inner = shared.borrow_mut();
                inner.initial = false;
                inner.walked = None;
                inner.state.on_snapshot(m)
            };
            after_change(
                shared,
                changed,
                Some(("snapshot", to_js(&json!({"source": "server", "version": m["version"]})))),
            );
            set_status(shared, Status::Ready);
            flush_outbox(shared);
        }
        "server:delta" if frame["moduleId"] == module.as_str() => {
            let finishing = std::mem::take(&mut shared.borrow_mut().initial);
            let all = finishing.then(|| crate::first_sync::finish(shared));
            let mut changed = shared.borrow_mut().state.on_delta(&frame);
            changed.tables.extend(all.into_iter().flatten());
            after_change(
                shared,
                changed,
                Some(("snapshot", to_js(&json!({"source": "delta", "from": frame["from"], "to": frame["to"]})))),
            );
            if finishing && shared.borrow().persist.is_some() {
                // Ready once IndexedDB holds the whole first sync: a store killed after `ready`
                // reopens offline with every row (`save_later` sets it).
                shared.borrow_mut().ready_when_saved = true;
            } else {
                set_status(shared, Status::Ready);
                flush_outbox(shared);
            }
        }
        "server:event" if frame["moduleId"] == module.as_str() => {
            let sequence = frame["sequence"].as_u64().unwrap_or(0);
            let changed = {
                let mut inner = shared.borrow_mut();
                if sequence <= inner.state.confirmed.cursor || inner.initial {
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
        "server:events" => {
            let mut all = Changed::default();
            let mut applied = Vec::new();
            {
                let mut inner = shared.borrow_mut();
                if inner.initial {
                    return; // the delta completing the first sync covers them
                }
                for change in frame["events"].as_array().into_iter().flatten() {
                    let sequence = change["seq"].as_u64().unwrap_or(0);
                    if change["module"] != module.as_str() || sequence <= inner.state.confirmed.cursor {
                        continue; // another module's, or already in the snapshot or delta we applied
                    }
                    let changed = inner.state.on_change(change);
                    inner.state.advance(sequence);
                    all.tables.extend(changed.tables);
                    all.persist.extend(changed.persist);
                    all.tables.insert(change["table"].as_str().unwrap_or_default().to_owned());
                    applied.push(change.clone());
                }
            }
            if !applied.is_empty() {
                after_change(shared, all, Some(("event", to_js(&json!({"events": applied})))));
            }
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
        "server:transaction" => on_transaction(shared, &frame),
        "server:subscribed" if frame["moduleId"] == module.as_str() => {
            let changed = shared.borrow_mut().state.on_subscribed(&frame);
            let sub = frame["subId"].as_str().unwrap_or_default().to_owned();
            after_change(shared, changed, Some(("subscribed", to_js(&frame))));
            let waiters = shared.borrow_mut().sub_waiters.remove(&sub).unwrap_or_default();
            call_all(waiters.into_iter().map(|(resolve, _)| (resolve, JsValue::TRUE)).collect());
        }
        "server:live" => {
            let changed = shared.borrow_mut().state.on_live(&frame);
            after_change(shared, changed, Some(("live", to_js(&frame))));
        }
        "server:directive" if frame["directive"] == "resubscribe" => resubscribe(shared),
        // No snapshot for a store that syncs in pages: it walks them, then says hello again.
        "server:directive" if frame["directive"] == "resync" && frame["moduleId"] == module.as_str() => {
            // Walked before (a cursor was sent, and the log no longer covers it): from nothing;
            // else the walk resumes where it stopped.
            let fresh = {
                let inner = shared.borrow();
                inner.walked.is_some() || inner.state.confirmed.cursor > 0
            };
            crate::first_sync::start(shared, fresh);
        }
        // The session's token expired: the server delivers nothing until `setToken` renews it.
        "server:directive" if frame["directive"] == "token-expired" => {
            let calls = emit_calls(&shared.borrow(), "token-expired", to_js(&frame));
            call_all(calls);
        }
        "server:error" => match frame["requestId"].as_str().and_then(|r| r.strip_prefix(SUBSCRIBE_REQUEST)) {
            Some(sub) => {
                let waiters = shared.borrow_mut().sub_waiters.remove(sub).unwrap_or_default();
                let code = frame["code"].as_str().unwrap_or("error");
                let message = frame["message"].as_str().unwrap_or("error");
                let reason = error(code, message, frame["details"].clone());
                call_all(waiters.into_iter().map(|(_, reject)| (reject, reason.clone())).collect());
            }
            None => on_error(shared, &frame),
        },
        _ => {}
    }
}

/// `server:transaction`: our transaction committed.
fn on_transaction(shared: &Shared, frame: &Value) {
    let Some(id) = frame["requestId"].as_str().map(str::to_owned) else { return };
    let (changed, waiter, persist, seq) = {
        let mut inner = shared.borrow_mut();
        let settled = inner.state.settle(&id);
        let changed = inner.state.on_transaction(frame);
        (changed, inner.waiters.remove(&id), inner.persist.clone(), settled.map(|p| p.seq))
    };
    if let (Some(p), Some(seq)) = (persist, seq) {
        spawn_local(async move {
            let _ = p.delete_pending(seq).await;
        });
    }
    let payload = to_js(frame);
    after_change(shared, changed, Some(("ack", payload.clone())));
    if let Some((resolve, _)) = waiter {
        call_all(vec![(resolve, payload)]);
    }
}

/// The `requestId` of a `client:subscribe` is this and the subscription's id.
pub(crate) const SUBSCRIBE_REQUEST: &str = "subscribe:";

/// The `client:subscribe` frame of a subscription the store holds, resuming from its cursor.
pub(crate) fn subscribe_frame(inner: &Inner, sub_id: &str) -> Option<Value> {
    let sub = inner.state.live.as_ref()?.subs.get(sub_id)?;
    let mut frame = sub.request.clone();
    frame["type"] = json!("client:subscribe");
    frame["subId"] = json!(sub_id);
    frame["moduleId"] = json!(inner.opts.module_id);
    frame["table"] = json!(sub.table);
    frame["requestId"] = json!(format!("{SUBSCRIBE_REQUEST}{sub_id}"));
    if let Some(c) = sub.cursor {
        frame["cursor"] = json!(c);
    }
    Some(frame)
}

/// Sends every subscription again (after a reconnect, or when the server dropped them).
pub(crate) fn resubscribe(shared: &Shared) {
    let inner = shared.borrow();
    let ids: Vec<String> = inner.state.live.iter().flat_map(|m| m.subs.keys().cloned()).collect();
    for id in ids {
        if let Some(frame) = subscribe_frame(&inner, &id) {
            send(&inner, &frame);
        }
    }
}

pub(crate) fn on_error(shared: &Shared, frame: &Value) {
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

pub(crate) fn open_socket(shared: &Shared) {
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

pub(crate) fn on_opened(shared: &Shared) {
    set_status(shared, Status::Open);
    crate::heartbeat::start(shared);
    let subscriptions_only = {
        let inner = &mut *shared.borrow_mut();
        inner.attempt = 0;
        if inner.opts.subscriptions_only() {
            let role = inner.opts.role.clone().unwrap_or_else(|| "client".into());
            let mut hello = json!({"type": "client:hello", "branchId": inner.opts.branch_id, "role": role, "sync": "subscriptions", "clientId": inner.client});
            if let Some(t) = &inner.opts.token {
                hello["token"] = json!(t);
            }
            send(inner, &hello);
        }
        inner.opts.subscriptions_only()
    };
    if subscriptions_only {
        // Nothing to wait for: the live queries bring their rows.
        resubscribe(shared);
        set_status(shared, Status::Ready);
        flush_outbox(shared);
        return;
    }
    send_hello(&shared.borrow());
}

/// The whole module's hello: the delta since the store's cursor, or (a store that keeps rows in
/// IndexedDB) a directive to walk the pages where another client would get a snapshot.
pub(crate) fn send_hello(inner: &Inner) {
    // Compact frames: each change once, several per frame under load.
    let mut hello = json!({"type": "client:hello", "branchId": inner.opts.branch_id, "role": inner.opts.role.clone().unwrap_or_else(|| "client".into()), "requestSnapshot": true, "frames": "compact", "clientId": inner.client});
    if let Some(t) = &inner.opts.token {
        hello["token"] = json!(t);
    }
    if inner.persist.is_some() {
        hello["snapshot"] = json!("pages");
    }
    // A finished walk asks for the delta since its first page.
    let cursor = inner.walked.as_ref().map_or(inner.state.confirmed.cursor, |w| w.cursor);
    if cursor > 0 && inner.state.schema.is_some() {
        hello["cursor"] = json!({ inner.opts.module_id.clone(): cursor });
    }
    send(inner, &hello);
}

pub(crate) fn on_closed(shared: &Shared) {
    {
        let mut inner = shared.borrow_mut();
        inner.ws = None;
        inner.heartbeat = None;
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

pub(crate) fn schedule_reconnect(shared: &Shared) {
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
pub(crate) async fn adopt_orphans(shared: &Shared) -> Result<(), JsValue> {
    let (persist, tab) = {
        let inner = shared.borrow();
        (inner.persist.clone(), inner.tab.clone())
    };
    let Some(persist) = persist else { return Ok(()) };
    let live = crate::tabs::live_tabs().await;
    let stored = persist.load(0).await?.outbox;
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

pub(crate) async fn fetch_schema(http_base: &str, branch: &str, module: &str, token: Option<&str>) -> Option<Value> {
    let window = web_sys::window()?;
    let url = format!(
        "{http_base}/api/branches/{}/modules/{}/schema",
        js_sys::encode_uri_component(branch),
        js_sys::encode_uri_component(module)
    );
    let init = web_sys::RequestInit::new();
    if let Some(t) = token {
        let headers = web_sys::Headers::new().ok()?;
        headers.set("Authorization", &format!("Bearer {t}")).ok()?;
        init.set_headers(&headers);
    }
    let request = web_sys::Request::new_with_str_and_init(&url, &init).ok()?;
    let response: web_sys::Response =
        JsFuture::from(window.fetch_with_request(&request)).await.ok()?.dyn_into().ok()?;
    if !response.ok() {
        return None;
    }
    let body = JsFuture::from(response.json().ok()?).await.ok()?;
    from_js(body).ok()
}
