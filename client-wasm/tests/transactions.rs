//! `store.transaction(fn)` against the real server: run again on fresh data after a conflict,
//! queued offline as one outbox entry and replayed exactly once.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A transaction's function in Rust, as a page would pass one: `tx` is the store's `Tx`.
fn transaction_fn(f: impl Fn(JsValue) -> Promise + 'static) -> Function {
    Closure::<dyn Fn(JsValue) -> Promise>::new(f).into_js_value().unchecked_into()
}

/// Calls `tx.<method>(...args)` as JS would.
fn call(tx: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(tx, &method.into())?.unchecked_into();
    f.apply(tx, &args.iter().collect::<js_sys::Array>())
}

/// A transaction that reads order `order`, lets `meddle` change it on the server meanwhile
/// (when it says so for that run), then writes the order and inserts dining table `table`.
fn read_then_write(order: &str, table: &str, runs: Rc<std::cell::Cell<u32>>, meddle: fn(u32) -> bool) -> Function {
    let (order, table) = (order.to_owned(), table.to_owned());
    transaction_fn(move |tx| {
        let (order, table, runs) = (order.clone(), table.clone(), runs.clone());
        wasm_bindgen_futures::future_to_promise(async move {
            runs.set(runs.get() + 1);
            let seen = rust(call(&tx, "get", &["order_header".into(), JsValue::from_str(&order)])?);
            if meddle(runs.get()) {
                let path = "/api/branches/demo/modules/pos/tables/order_header";
                let note = format!("theirs {}", runs.get());
                let body = json!({"record": {"id": order, "note": note}, "expectedVersion": seen["version"]});
                http("PATCH", path, Some(body)).await;
            }
            let note = format!("mine after {}", seen["note"].as_str().unwrap_or("nothing"));
            call(&tx, "merge", &["order_header".into(), js(json!({"id": order, "note": note})), JsValue::UNDEFINED])?;
            call(&tx, "insert", &["dining_tables".into(), js(json!({"id": table, "name": "tx"})), JsValue::UNDEFINED])?;
            Ok(JsValue::from(runs.get()))
        })
    })
}

#[wasm_bindgen_test]
async fn a_transaction_runs_again_on_fresh_data_after_a_conflict_and_commits_whole() {
    let Some(ws) = server() else { return };
    let s = store(ws, &unique("tx"));
    wait(s.connect()).await.unwrap();
    wait(s.ready()).await.unwrap();
    let order = unique("o");
    wait(s.insert("order_header".into(), js(json!({"id": order})), None)).await.unwrap();

    // Someone else changes the order while the first run is under way: the server refuses that
    // run, and the function runs again on the order as it is now.
    let (runs, table) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let f = read_then_write(&order, &table, runs.clone(), |run| run == 1);
    let ack = rust(wait(s.transaction(f, None)).await.expect("committed"));
    assert_eq!((runs.get(), &ack["value"]), (2, &json!(2)), "{ack}");
    let results = ack["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{ack}");
    assert!(ack["transactionId"].is_string(), "{ack}");
    assert_eq!(stored("order_header", &order).await["note"], "mine after theirs 1");
    assert_eq!(stored("dining_tables", &table).await["name"], "tx");
    assert_eq!(
        rust(s.get_record("order_header".into(), JsValue::from_str(&order)).unwrap())["note"],
        "mine after theirs 1"
    );
    assert_eq!(s.pending(), 0);

    // A transaction whose reads change on every run gives up after its attempts, and nothing of
    // it is stored or shown.
    let (runs, lost) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let f = read_then_write(&order, &lost, runs.clone(), |_| true);
    let err = wait(s.transaction(f, Some(js(json!({"attempts": 2}))))).await.expect_err("refused");
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "conflict");
    assert_eq!(runs.get(), 2);
    assert_eq!(stored("dining_tables", &lost).await, Value::Null);
    assert_eq!(rust(s.get_record("dining_tables".into(), JsValue::from_str(&lost)).unwrap()), Value::Null);
    assert_eq!(s.pending(), 0);
    s.close();
}

#[wasm_bindgen_test]
async fn a_transaction_queued_offline_is_one_outbox_entry_replayed_exactly_once() {
    let Some(ws) = server() else { return };
    let db = unique("txoff");
    let online = store(ws, &db);
    wait(online.connect()).await.unwrap();
    wait(online.ready()).await.unwrap();
    let order = unique("o");
    wait(online.insert("order_header".into(), js(json!({"id": order})), None)).await.unwrap();
    sleep(100).await;
    online.close();

    let offline = store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let (runs, table) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let queued = offline.transaction(read_then_write(&order, &table, runs.clone(), |_| false), None);
    assert!(eventually(2000, || offline.pending() == 1).await, "one outbox entry");
    assert_eq!(
        rust(offline.get_record("order_header".into(), JsValue::from_str(&order)).unwrap())["note"],
        "mine after nothing"
    );
    assert_eq!(rust(offline.get_record("dining_tables".into(), JsValue::from_str(&table)).unwrap())["name"], "tx");
    sleep(100).await;
    drop(queued);
    offline.close();
    // The same device's outbox as a crash before the answer arrived left it: replayed too.
    let (twin_db, entries) = twin_of(&db).await;
    assert_eq!(entries, 1, "the transaction is durable as one entry");

    let back = store(ws, &db);
    wait(back.connect()).await.unwrap();
    wait(back.ready()).await.unwrap();
    assert!(eventually(5000, || back.pending() == 0).await, "the transaction was sent and answered");
    let twin = store(ws, &twin_db);
    let (errors, cb) = recorder();
    twin.on("error".into(), cb);
    wait(twin.connect()).await.unwrap();
    wait(twin.ready()).await.unwrap();
    assert!(eventually(5000, || twin.pending() == 0).await, "the replay was answered");
    assert!(
        errors.borrow().is_empty(),
        "the replay was answered with what the first one committed: {:?}",
        errors.borrow()
    );
    let row = stored("order_header", &order).await;
    assert_eq!((&row["note"], &row["version"]), (&json!("mine after nothing"), &json!(2)), "written once: {row}");
    assert_eq!(stored("dining_tables", &table).await["name"], "tx");
    assert_eq!(runs.get(), 1, "queued offline, the function ran once");
    back.close();
    twin.close();
}
