//! `store.transaction(fn, options)`: runs the app's function with a [`Tx`] that reads the store's
//! view and collects writes ([`crate::transaction::Draft`]), queues the result as one outbox entry,
//! and, while online, runs the function again on fresh data when the server says what it read has
//! changed (at most `attempts` times, 5 by default, as Firestore's `runTransaction`). Queued
//! offline, it is sent once the store is back and its reads are checked then: its promise settles
//! with the server's answer, and a refusal is not retried (the function may be long gone, with
//! the page that ran it).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use mishkah_core::{Action, Mutation, RecordKey};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::inner::{Shared, Status};
use crate::interop::{error, from_js, now, to_js};
use crate::state::Changed;
use crate::transaction::Draft;

const ATTEMPTS: u32 = 5;

/// What the transaction's function is given: `get` reads, `insert`/`update`/`merge`/`save`/
/// `remove` write (a write the store refuses throws at once, with the store's error).
#[wasm_bindgen]
pub struct Tx {
    store: Shared,
    draft: Rc<RefCell<Draft>>,
}

#[wasm_bindgen]
impl Tx {
    /// The row `id` of `table` as this transaction sees it (`null` when absent): the first read
    /// of a row is checked again by the server when the transaction commits.
    #[wasm_bindgen(unchecked_return_type = "Row | null")]
    pub fn get(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Key")] id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let key = RecordKey(id.as_string().unwrap_or_else(|| id.as_f64().map(|n| n.to_string()).unwrap_or_default()));
        let inner = self.store.borrow();
        held(&inner.state, &table, &key)?;
        Ok(to_js(&self.draft.borrow_mut().get(&inner.state, &table, &key, now())))
    }

    pub fn insert(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.write(Action::Insert, table, record, options)
    }

    pub fn update(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.write(Action::Update, table, record, options)
    }

    pub fn merge(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.write(Action::Merge, table, record, options)
    }

    pub fn save(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.write(Action::Save, table, record, options)
    }

    pub fn remove(
        &self,
        table: String,
        #[wasm_bindgen(unchecked_param_type = "Row")] record: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "WriteOptions")] options: Option<JsValue>,
    ) -> Result<(), JsValue> {
        let options = options.unwrap_or(JsValue::UNDEFINED);
        self.write(Action::Delete, table, record, options)
    }
}

impl Tx {
    fn write(&self, action: Action, table: String, record: JsValue, options: JsValue) -> Result<(), JsValue> {
        let Value::Object(record) = from_js(record)? else {
            return Err(error("invalid-argument", "a record is an object", Value::Null));
        };
        let mut m = Mutation::new(&table, action, Value::Object(record));
        m.expected_version = from_js(options).ok().and_then(|o| o.get("expectedVersion").and_then(Value::as_i64));
        let fresh = format!("{:x}", (js_sys::Math::random() * 1e15) as u64);
        let inner = self.store.borrow();
        let t = inner.state.schema.as_ref().and_then(|s| s.table(&table));
        if let (Some(key), false) = (t.and_then(|t| RecordKey::of(t, &m.record).ok()), action == Action::Insert) {
            held(&inner.state, &table, &key)?;
        }
        self.draft
            .borrow_mut()
            .write(&inner.state, m, &fresh, now())
            .map_err(|e| error(e.code(), &e.to_string(), json!({"table": table})))
    }
}

/// Runs `f` as a transaction; see the module's documentation.
/// A transaction reads synchronously: in a store that keeps its rows in IndexedDB, only the rows
/// it holds (those its pending writes touch).
fn held(state: &crate::state::ClientState, table: &str, key: &RecordKey) -> Result<(), JsValue> {
    if state.partial && state.confirmed.get(table, key).is_none() && !state.pending_keys(table).contains(key) {
        let message = "this store keeps its rows in IndexedDB: a transaction reads only rows it holds";
        return Err(error("not-held", message, json!({"table": table, "key": key.0})));
    }
    Ok(())
}

pub(crate) fn run(shared: Shared, f: Function, options: JsValue) -> Promise {
    let attempts = from_js(options)
        .ok()
        .and_then(|o| o.get("attempts").and_then(Value::as_u64))
        .map_or(ATTEMPTS, |n| n.clamp(1, 100) as u32);
    wasm_bindgen_futures::future_to_promise(async move {
        let mut last = Value::Null;
        for attempt in 0..attempts {
            let draft = Rc::new(RefCell::new(Draft::default()));
            let tx = Tx { store: shared.clone(), draft: draft.clone() };
            // The function's own failure is the transaction's: nothing is queued.
            let returned = f.call1(&JsValue::NULL, &tx.into())?;
            let value = JsFuture::from(Promise::resolve(&returned)).await?;
            let draft = draft.replace(Draft::default());
            if draft.is_empty() {
                return Ok(answer(json!({"results": []}), &value));
            }
            let online = shared.borrow().status == Status::Ready;
            let outcome = JsFuture::from(queue(&shared, draft)).await;
            match outcome {
                Ok(ack) => return Ok(with_value(ack, &value)),
                Err(e) if online && is_conflict(&e) => {
                    last = from_js(Reflect::get(&e, &"details".into()).unwrap_or(JsValue::NULL)).unwrap_or(Value::Null);
                    // The change that won is on its way to this store: give it a moment.
                    sleep(10 * (1 << attempt.min(6)) + (js_sys::Math::random() * 10.0) as i32).await;
                }
                Err(e) => return Err(e),
            }
        }
        let message = format!("what the transaction read kept changing: gave up after {attempts} attempts");
        Err(error("conflict", &message, last))
    })
}

/// Queues the draft's reads and writes as one outbox entry; the promise settles with the
/// server's answer.
fn queue(shared: &Shared, draft: Draft) -> Promise {
    let (reads, writes) = draft.finish();
    let mut changed = Changed::default();
    changed.tables.extend(writes.iter().map(|w| w.table.clone()));
    let (pending, persist) = {
        let mut inner = shared.borrow_mut();
        let (id, seq) = inner.next_write();
        let Some(pending) = inner.state.enqueue_transaction(reads, writes, id, seq) else {
            return Promise::resolve(&to_js(&json!({"results": []})));
        };
        (inner.own(pending), inner.persist.clone())
    };
    crate::writes::send_queued(shared, pending, persist, changed)
}

/// The server refused because what the transaction read or wrote had changed since.
fn is_conflict(e: &JsValue) -> bool {
    let field = |name: &str| Reflect::get(e, &name.into()).ok().and_then(|v| v.as_string());
    let inner = Reflect::get(e, &"details".into())
        .and_then(|d| Reflect::get(&d, &"details".into()))
        .and_then(|d| Reflect::get(&d, &"code".into()))
        .ok()
        .and_then(|c| c.as_string());
    match field("code").as_deref() {
        Some("precondition-failed" | "version-conflict") => true,
        Some("batch-aborted") => {
            matches!(inner.as_deref(), Some("version-conflict" | "duplicate-key" | "not-found" | "unique-violation"))
        }
        _ => false,
    }
}

fn answer(ack: Value, value: &JsValue) -> JsValue {
    with_value(to_js(&ack), value)
}

/// The server's answer, with what the function returned as `value`.
fn with_value(ack: JsValue, value: &JsValue) -> JsValue {
    if ack.is_object() {
        let _ = Reflect::set(&ack, &"value".into(), value);
    }
    ack
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(p).await;
}
