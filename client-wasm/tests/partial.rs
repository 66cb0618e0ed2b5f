//! A store whose module is larger than it keeps in memory (`memoryRows`), in headless Chromium:
//! it reads through IndexedDB's chunks and answers `find`, `count` and `get` exactly as a store
//! holding every row does — offline writes, a reopen and `watch` included; the synchronous reads
//! say `not-held` instead of answering from a part.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use js_sys::{Function, Reflect};
use mishkah_client::persist::Persist;
use mishkah_client::store::{create_store, Store};
use mishkah_core::{RecordKey, Schema};
use serde_json::{json, Value};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const ROWS: usize = 1_000;

fn seated_schema() -> Schema {
    Schema::from_json(&json!({"tables": {"dining_tables": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "section": {"type": "text", "index": true},
        "seats": {"type": "integer"}, "version": {"type": "integer"}}}}}))
    .unwrap()
}

fn open(db: &str, memory_rows: Option<u64>) -> Store {
    let mut options = json!({"branchId": "dar", "moduleId": "pos", "wsUrl": OFFLINE_WS, "httpUrl": "http://127.0.0.1:9",
                             "useIndexedDB": true, "dbName": db, "autoReconnect": false});
    if let Some(n) = memory_rows {
        options["memoryRows"] = json!(n);
    }
    create_store(js(options)).unwrap()
}

/// What a read answers, less the times a pending write's row gets as it is viewed.
async fn answer(p: js_sys::Promise) -> Value {
    let mut v = rust(wait(p).await.unwrap());
    let rows: Vec<&mut Value> = match &mut v {
        Value::Array(rows) => rows.iter_mut().collect(),
        one => vec![one],
    };
    for row in rows {
        if let Some(o) = row.as_object_mut() {
            o.remove("updatedAt");
            o.remove("createdAt");
        }
    }
    v
}

/// What a store answers to a set of reads (`find`, `count` and `get`), labelled.
async fn answers(store: &Store) -> Vec<(String, Value)> {
    let queries = [
        json!({"where": "section = \"hall\"", "limit": 20}),
        json!({"where": "section = \"hall\"", "limit": 20, "offset": 15}),
        json!({"where": "seats > 6", "orderBy": ["-seats", "id"], "limit": 30}),
        json!({"where": {"section": {"in": ["roof", "garden"]}}}),
        json!({"where": "seats = 3 && section = \"garden\""}),
        json!({"limit": 5}),
        json!({}),
    ];
    let mut out = Vec::new();
    for q in queries {
        out.push((format!("find {q}"), answer(store.find("dining_tables".into(), Some(js(q.clone())))).await));
        let mut filter = q.clone();
        filter.as_object_mut().unwrap().remove("limit");
        out.push((format!("count {q}"), answer(store.count("dining_tables".into(), Some(js(filter)))).await));
    }
    for key in ["t0000", "t0001", "t0004", "t0500", "t0999", "nope", "new-1"] {
        out.push((format!("get {key}"), answer(store.get("dining_tables".into(), key.into())).await));
    }
    out
}

fn agree(a: &[(String, Value)], b: &[(String, Value)], label: &str) {
    assert_eq!(a.len(), b.len());
    for ((what, x), (_, y)) in a.iter().zip(b) {
        let size = |v: &Value| v.as_array().map_or(1, Vec::len);
        assert!(x == y, "{label}: {what} differs ({} vs {} rows): {x} vs {y}", size(x), size(y));
    }
}

#[wasm_bindgen_test]
async fn a_store_over_its_memory_rows_reads_through_indexeddb_as_a_whole_store_does() {
    let db = unique("partial");
    let schema = seated_schema();
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&serde_json::to_value(&schema).unwrap()).await.unwrap();
        let rows = (0..ROWS)
            .map(|i| {
                let id = format!("t{i:04}");
                let section = ["hall", "roof", "garden"][i % 3];
                let row = json!({"id": id, "section": section, "seats": i % 10, "version": 1});
                ("dining_tables".to_owned(), RecordKey(id), Some(row.as_object().unwrap().clone()))
            })
            .collect();
        p.write_rows(rows, 50, false, None, false, Some(&schema)).await.unwrap();
        p.close();
    }
    let partial = open(&db, Some(100));
    wait(partial.connect()).await.unwrap();
    let err = partial.list_table("dining_tables".into()).unwrap_err();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "not-held", "no answer from a part");
    assert!(partial.query("dining_tables".into(), js(json!({}))).is_err());
    assert_eq!(partial.cursor(), 50.0);
    assert_eq!(answer(partial.count("dining_tables".into(), None)).await, json!(ROWS));
    let count = |q: &str| partial.count("dining_tables".into(), Some(js(json!({"where": q}))));
    assert_eq!(answer(count("section = \"hall\"")).await, json!(334), "from the summaries");
    assert_eq!(answer(count("seats = 3")).await, json!(100), "read chunk by chunk");
    assert_eq!(answer(count("seats = 3 && section = \"roof\"")).await, json!(33), "chunks skipped and read");

    // What the watch sees, as it sees it.
    let (seen, cb) = recorder();
    let _stop: Function =
        partial.watch("dining_tables".into(), js(json!({"where": "section = \"roof\"", "limit": 3})), cb).unwrap();
    assert!(eventually(2000, || !seen.borrow().is_empty()).await, "a watch is answered through IndexedDB");
    assert_eq!(seen.borrow()[0].as_array().unwrap().len(), 3);

    // Offline writes on rows the store does not hold: each holds its row first, in order.
    let _ = partial.merge("dining_tables".into(), js(json!({"id": "t0001", "section": "hall", "seats": 9})), None);
    let _ = partial.insert("dining_tables".into(), js(json!({"id": "new-1", "section": "roof", "seats": 7})), None);
    let _ = partial.remove("dining_tables".into(), js(json!({"id": "t0004"})), None);
    let refused = wait(partial.merge("dining_tables".into(), js(json!({"id": "nope", "seats": 1})), None)).await;
    assert_eq!(Reflect::get(&refused.unwrap_err(), &"code".into()).unwrap(), "not-found", "a row that is nowhere");
    assert_eq!(partial.pending(), 3);
    let moved = answer(partial.get("dining_tables".into(), "t0001".into())).await;
    assert_eq!((&moved["section"], &moved["seats"], &moved["version"]), (&json!("hall"), &json!(9), &json!(2)));
    assert!(
        eventually(2000, || seen.borrow().last().is_some_and(|rows| rows[0]["id"] == "new-1")).await,
        "the watch saw the insert: {:?}",
        seen.borrow().last()
    );

    let seen_partial = answers(&partial).await;
    partial.close();

    // A store holding every row of the same database answers the same, pending writes included
    // (the outbox passes to it with the first store closed).
    let whole = open(&db, None);
    wait(whole.connect()).await.unwrap();
    assert!(eventually(2000, || whole.pending() == 3).await, "the whole store took the outbox over");
    let seen_whole = answers(&whole).await;
    agree(&seen_partial, &seen_whole, "live");
    assert_eq!(rust(whole.list_table("dining_tables".into()).unwrap()).as_array().unwrap().len(), ROWS);
    whole.close();

    // Reopened: the same again, from IndexedDB alone.
    let partial = open(&db, Some(100));
    wait(partial.connect()).await.unwrap();
    assert!(eventually(2000, || partial.pending() == 3).await);
    agree(&answers(&partial).await, &seen_whole, "reopened");
    partial.close();
    wait(Store::delete_database(db)).await.unwrap();
}
