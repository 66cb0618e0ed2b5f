//! The store's IndexedDB cache and outbox in headless Chromium: cache-first reads, offline
//! writes that survive a reload, refused writes never queued, tabs sharing a database.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;

use js_sys::Reflect;
use mishkah_client::persist::Persist;
use mishkah_core::RecordKey;
use serde_json::{json, Value};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn indexeddb_round_trip_and_outbox_survive_a_reload() {
    let db = unique("idb");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema()).await.unwrap();
        let row = json!({"id": "T1", "name": "cached", "version": 1}).as_object().unwrap().clone();
        p.write_rows(vec![("dining_tables".into(), RecordKey("T1".into()), Some(row))], 7, true, None, false, None)
            .await
            .unwrap();
        p.close();
    }
    let a = store(OFFLINE_WS, &db);
    wait(a.connect()).await.unwrap();
    let rows = rust(a.list_table("dining_tables".into()).unwrap());
    assert_eq!(rows[0]["name"], "cached", "cache-first: rows before any network");
    assert_eq!(a.cursor(), 7.0);
    // Offline writes: visible at once, queued durably, in order.
    let _ = a.insert("dining_tables".into(), js(json!({"id": "T2", "name": "offline 1"})), None);
    let _ = a.merge("dining_tables".into(), js(json!({"id": "T1", "name": "offline 2"})), None);
    assert_eq!(a.pending(), 2);
    assert_eq!(rust(a.get_record("dining_tables".into(), "T1".into()).unwrap())["name"], "offline 2");
    sleep(100).await;
    a.close();

    let b = store(OFFLINE_WS, &db);
    wait(b.connect()).await.unwrap();
    assert_eq!(b.pending(), 2, "the outbox survived the reload");
    let names: Vec<Value> = rust(b.list_table("dining_tables".into()).unwrap())
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("offline 2"), json!("offline 1")], "pending writes replay over the cache in order");
    b.close();
}

#[wasm_bindgen_test]
async fn a_write_the_core_refuses_is_rejected_at_once_and_not_queued() {
    let db = unique("refuse");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema()).await.unwrap();
        p.close();
    }
    let s = store(OFFLINE_WS, &db);
    wait(s.connect()).await.unwrap();
    let err = wait(s.merge("dining_tables".into(), js(json!({"id": "ghost"})), None)).await.unwrap_err();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "not-found");
    assert_eq!(s.pending(), 0);
    s.close();
}

#[wasm_bindgen_test]
async fn opening_a_store_with_10000_cached_rows_is_fast_enough_to_measure() {
    let db = unique("big");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema()).await.unwrap();
        let rows = (0..10_000)
            .map(|i| {
                let id = format!("T{i:05}");
                let row = json!({"id": id, "name": {"ar": "طاولة", "en": "Table"}, "seats": 4, "version": 1})
                    .as_object()
                    .unwrap()
                    .clone();
                ("dining_tables".to_owned(), RecordKey(id), Some(row))
            })
            .collect();
        p.write_rows(rows, 10_000, true, None, false, None).await.unwrap();
        p.close();
    }
    let started = js_sys::Date::now();
    let s = store(OFFLINE_WS, &db);
    wait(s.connect()).await.unwrap();
    let rows = s.query("dining_tables".into(), js(json!({"where": {"seats": 4}, "limit": 20}))).unwrap();
    let took = js_sys::Date::now() - started;
    assert_eq!(rust(rows).as_array().unwrap().len(), 20);
    assert_eq!(rust(s.list_table("dining_tables".into()).unwrap()).as_array().unwrap().len(), 10_000);
    // Reported, not asserted: timing belongs in benchmarks, not in pass/fail.
    web_sys::console::log_1(&format!("opened a store with 10,000 cached rows and ran a query in {took:.0} ms").into());
    s.close();
}

#[wasm_bindgen_test]
async fn tabs_sharing_a_database_never_both_send_a_write() {
    let db = unique("tabs");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema()).await.unwrap();
        p.close();
    }
    let a = store(OFFLINE_WS, &db);
    wait(a.connect()).await.unwrap();
    for id in ["T-tab-1", "T-tab-2"] {
        let _ = a.insert("dining_tables".into(), js(json!({"id": id, "name": "from tab A"})), None);
    }
    sleep(100).await;
    // Tab B opens the same database while A lives: A's writes stay A's to send.
    let b = store(OFFLINE_WS, &db);
    wait(b.connect()).await.unwrap();
    assert_eq!((a.pending(), b.pending()), (2, 0));
    // A goes away (its Web Lock is released): the next tab to connect adopts its writes.
    a.close();
    sleep(100).await;
    let c = store(OFFLINE_WS, &db);
    wait(c.connect()).await.unwrap();
    assert_eq!(c.pending(), 2, "orphaned writes adopted, none lost");
    b.close();
    c.close();
}
