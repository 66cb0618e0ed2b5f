//! The store's writes: each checked by the core against the view (and the server's write rules)
//! before it is queued, kept in IndexedDB's outbox before it is ever sent, then sent. A store that
//! keeps its rows in IndexedDB first holds the row a write is checked against, the writes still
//! queued in the order they were made.

use std::rc::Rc;

use js_sys::Promise;
use mishkah_core::{Action, Mutation, RecordKey};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::inner::Shared;
use crate::interop::{error, from_js, now};
use crate::persist::Persist;
use crate::session::{after_change, flush_outbox};
use crate::state::Changed;

/// A write from JS (`insert`, `merge`...): its promise settles with the server's answer.
pub(crate) fn write(shared: &Shared, action: Action, table: String, record: JsValue, options: JsValue) -> Promise {
    let record = match from_js(record) {
        Ok(Value::Object(r)) => r,
        Ok(_) => return Promise::reject(&error("invalid-argument", "a record is an object", Value::Null)),
        Err(e) => return Promise::reject(&e),
    };
    let expected = from_js(options).ok().and_then(|o| o.get("expectedVersion").and_then(Value::as_i64));
    let m = Mutation { table, action, record, expected_version: expected, mutation_id: None };
    if !shared.borrow().state.partial {
        return enqueue_write(shared, m);
    }
    // A partial store first holds the row the write is checked against; writes still queue in
    // the order they were made, each after the one before it.
    let shared = shared.clone();
    let before = shared.borrow_mut().write_chain.take();
    let mut settle = None;
    let queued = Promise::new(&mut |resolve, _| settle = Some(resolve));
    shared.borrow_mut().write_chain = Some(queued);
    wasm_bindgen_futures::future_to_promise(async move {
        if let Some(before) = before {
            let _ = JsFuture::from(before).await;
        }
        let key = shared
            .borrow()
            .state
            .schema
            .as_ref()
            .and_then(|s| s.table(&m.table))
            .and_then(|t| RecordKey::of(t, &m.record).ok());
        let held = match key {
            Some(key) => crate::reads::hold(&shared, &m.table, &key).await,
            None => Ok(()),
        };
        let answer = held.map(|()| enqueue_write(&shared, m));
        if let Some(settle) = settle {
            let _ = settle.call0(&JsValue::NULL);
        }
        JsFuture::from(answer?).await
    })
}

/// Checks a write against the view, queues it and sends it; the promise settles with the server's
/// answer.
fn enqueue_write(shared: &Shared, mut m: Mutation) -> Promise {
    let table = m.table.clone();
    let (pending, persist) = {
        let mut inner = shared.borrow_mut();
        if m.expected_version.is_none() && m.action != Action::Insert && is_versioned(&table) {
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
        let (id, seq) = inner.next_write();
        match inner.state.enqueue(m, id, seq, now()) {
            Ok(p) => (inner.own(p), inner.persist.clone()),
            Err(e) => {
                let details = json!({"table": table});
                return Promise::reject(&error(e.code(), &e.to_string(), details));
            }
        }
    };
    let mut changed = Changed::default();
    changed.tables.insert(table);
    send_queued(shared, pending, persist, changed)
}

/// Takes a queued write or transaction to the server: its promise settles with the server's
/// answer. Durable first: it is in IndexedDB's outbox before it is ever sent.
pub(crate) fn send_queued(
    shared: &Shared,
    pending: crate::state::Pending,
    persist: Option<Rc<Persist>>,
    changed: Changed,
) -> Promise {
    let id = pending.mutation_id.clone();
    let waiting = shared.clone();
    let promise = Promise::new(&mut |resolve, reject| {
        waiting.borrow_mut().waiters.insert(id.clone(), (resolve, reject));
    });
    after_change(shared, changed, None);
    let shared = shared.clone();
    spawn_local(async move {
        if let Some(p) = persist {
            if let Err(e) = p.put_pending(&pending).await {
                web_sys::console::error_2(&"mishkah: could not persist a pending write".into(), &e);
            }
        }
        flush_outbox(&shared);
    });
    promise
}

fn is_versioned(table: &str) -> bool {
    mishkah_core::VersionPolicy::default().requires_version(table)
}
