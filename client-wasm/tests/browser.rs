//! The store in real headless Chromium: IndexedDB, the outbox, optimistic writes and, when the test
//! script has started a server (`MISHKAH_TEST_WS` at build time), sync against it.

#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Reflect};
use mishkah_client::persist::Persist;
use mishkah_client::store::{create_store, Store};
use mishkah_core::RecordKey;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const SERVER_WS: Option<&str> = option_env!("MISHKAH_TEST_WS");
const SERVER_HTTP: Option<&str> = option_env!("MISHKAH_TEST_HTTP");
/// A port nothing listens on: a store pointed at it is offline.
const OFFLINE_WS: &str = "ws://127.0.0.1:9/ws";

fn js(v: Value) -> JsValue {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap()
}

use serde::Serialize;

fn rust(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap_or(Value::Null)
}

async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).unwrap();
    });
    let _ = JsFuture::from(p).await;
}

/// Polls `check` every 20 ms for up to `ms`.
async fn eventually(ms: i32, mut check: impl FnMut() -> bool) -> bool {
    let mut waited = 0;
    while waited < ms {
        if check() {
            return true;
        }
        sleep(20).await;
        waited += 20;
    }
    check()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", (js_sys::Math::random() * 1e9) as u64)
}

fn store(ws: &str, db: &str) -> Store {
    let http = SERVER_HTTP.unwrap_or("http://127.0.0.1:9");
    create_store(js(json!({"branchId": "demo", "moduleId": "pos", "wsUrl": ws, "httpUrl": http, "dbName": db, "autoReconnect": true})))
        .unwrap()
}

fn schema() -> Value {
    json!({"tables": {
        "dining_tables": {"name": "dining_tables", "sql_name": "dining_tables", "primary_key": ["id"], "indexes": [],
            "fields": [{"name": "id", "column": "id", "type": "text", "source_type": "string", "nullable": false, "default": null,
                        "max_length": null, "enum_values": null, "primary_key": true, "unique": false, "indexed": false, "references": null}]}
    }, "warnings": []})
}

#[wasm_bindgen_test]
async fn indexeddb_round_trip_and_outbox_survive_a_reload() {
    let db = unique("idb");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema()).await.unwrap();
        let row = json!({"id": "T1", "name": "cached", "version": 1}).as_object().unwrap().clone();
        p.write_rows(vec![("dining_tables".into(), RecordKey("T1".into()), Some(row))], 7, true, None, false)
            .await
            .unwrap();
        p.close();
    }
    let a = store(OFFLINE_WS, &db);
    wait(a.connect()).await.unwrap();
    let rows = rust(a.list_table("dining_tables".into()));
    assert_eq!(rows[0]["name"], "cached", "cache-first: rows before any network");
    assert_eq!(a.cursor(), 7.0);
    // Offline writes: visible at once, queued durably, in order.
    let _ = a.insert("dining_tables".into(), js(json!({"id": "T2", "name": "offline 1"})), JsValue::UNDEFINED);
    let _ = a.merge("dining_tables".into(), js(json!({"id": "T1", "name": "offline 2"})), JsValue::UNDEFINED);
    assert_eq!(a.pending(), 2);
    assert_eq!(rust(a.get_record("dining_tables".into(), "T1".into()))["name"], "offline 2");
    sleep(100).await;
    a.close();

    let b = store(OFFLINE_WS, &db);
    wait(b.connect()).await.unwrap();
    assert_eq!(b.pending(), 2, "the outbox survived the reload");
    let names: Vec<Value> =
        rust(b.list_table("dining_tables".into())).as_array().unwrap().iter().map(|r| r["name"].clone()).collect();
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
    let err = wait(s.merge("dining_tables".into(), js(json!({"id": "ghost"})), JsValue::UNDEFINED)).await.unwrap_err();
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "not-found");
    assert_eq!(s.pending(), 0);
    s.close();
}

fn recorder() -> (Rc<RefCell<Vec<Value>>>, Function) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| sink.borrow_mut().push(rust(v)));
    (seen, f.into_js_value().unchecked_into())
}

async fn http(method: &str, path: &str, body: Option<Value>) -> Value {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        init.set_body(&JsValue::from_str(&b.to_string()));
        let headers = web_sys::Headers::new().unwrap();
        headers.set("content-type", "application/json").unwrap();
        init.set_headers(&headers);
    }
    let url = format!("{}{path}", SERVER_HTTP.unwrap());
    let resp: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str_and_init(&url, &init)).await.unwrap().unchecked_into();
    rust(JsFuture::from(resp.json().unwrap()).await.unwrap())
}

fn server() -> Option<&'static str> {
    if SERVER_WS.is_none() && option_env!("CI") == Some("true") {
        panic!("CI=true but MISHKAH_TEST_WS is not set: run the browser tests through scripts/test-wasm");
    }
    if SERVER_WS.is_none() {
        web_sys::console::log_1(&"skipped: no MISHKAH_TEST_WS (run scripts/test)".into());
    }
    SERVER_WS
}

#[wasm_bindgen_test]
async fn two_stores_sync_inserts_and_updates_and_watch_fires_on_remote_events() {
    let Some(ws) = server() else { return };
    let a = store(ws, &unique("a"));
    let b = store(ws, &unique("b"));
    wait(a.connect()).await.unwrap();
    wait(b.connect()).await.unwrap();
    wait(a.ready()).await.unwrap();
    wait(b.ready()).await.unwrap();
    let id = unique("T");
    let (seen, cb) = recorder();
    let _unsubscribe = b.watch("dining_tables".into(), js(json!({"where": {"id": id}})), cb).unwrap();
    let ack =
        wait(a.insert("dining_tables".into(), js(json!({"id": id, "name": "from A", "seats": 2})), JsValue::UNDEFINED))
            .await
            .unwrap();
    assert_eq!(rust(ack)["type"], "server:ack");
    assert!(
        eventually(3000, || seen.borrow().last().is_some_and(|rows| rows[0]["name"] == "from A")).await,
        "B's watch saw A's insert"
    );
    wait(b.update("dining_tables".into(), js(json!({"id": id, "name": "from B"})), JsValue::UNDEFINED)).await.unwrap();
    assert!(
        eventually(3000, || rust(a.get_record("dining_tables".into(), JsValue::from_str(&id)))["name"] == "from B")
            .await
    );
    assert_eq!(rust(a.get_record("dining_tables".into(), JsValue::from_str(&id)))["version"], json!(2));
    a.close();
    b.close();
}

#[wasm_bindgen_test]
async fn a_conflict_rolls_the_optimistic_write_back_and_reports_the_server_row() {
    let Some(ws) = server() else { return };
    let db = unique("conflict");
    let a = store(ws, &db);
    wait(a.connect()).await.unwrap();
    wait(a.ready()).await.unwrap();
    let id = unique("o");
    wait(a.insert("order_header".into(), js(json!({"id": id})), JsValue::UNDEFINED)).await.unwrap();
    sleep(100).await;
    a.close();

    // Offline, A edits the row it saw at version 1: visible at once.
    let offline = store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let write = offline.merge("order_header".into(), js(json!({"id": id, "note": "mine"})), JsValue::UNDEFINED);
    assert_eq!(rust(offline.get_record("order_header".into(), JsValue::from_str(&id)))["note"], "mine");
    drop(write);
    sleep(100).await;
    offline.close();

    // Meanwhile someone else moves the row to version 2.
    let path = "/api/branches/demo/modules/pos/tables/order_header";
    let r = http("PATCH", path, Some(json!({"record": {"id": id, "note": "theirs"}, "expectedVersion": 1}))).await;
    assert_eq!(r["record"]["version"], json!(2), "{r}");

    // Back online: the server refuses A's stale write; A's view rolls back and it is told why.
    let back = store(ws, &db);
    let (conflicts, cb) = recorder();
    back.on("conflict".into(), cb);
    wait(back.connect()).await.unwrap();
    wait(back.ready()).await.unwrap();
    assert!(eventually(5000, || !conflicts.borrow().is_empty()).await, "a conflict event");
    let conflict = conflicts.borrow()[0].clone();
    assert_eq!(conflict["code"], "version-conflict");
    assert_eq!(conflict["details"]["currentVersion"], json!(2));
    assert_eq!(conflict["current"]["note"], "theirs");
    assert_eq!(back.pending(), 0);
    assert_eq!(rust(back.get_record("order_header".into(), JsValue::from_str(&id)))["note"], "theirs");
    back.close();
}

#[wasm_bindgen_test]
async fn an_offline_store_replays_its_writes_exactly_once_and_a_reload_gets_a_delta() {
    let Some(ws) = server() else { return };
    let db = unique("offline");
    // Learn the schema and the current state first, then go offline.
    let online = store(ws, &db);
    wait(online.connect()).await.unwrap();
    wait(online.ready()).await.unwrap();
    sleep(100).await;
    online.close();

    let offline = store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let ids: Vec<String> = (0..3).map(|_| unique("off")).collect();
    for id in &ids {
        let _ = offline.insert("dining_tables".into(), js(json!({"id": id, "name": "queued"})), JsValue::UNDEFINED);
    }
    assert_eq!(offline.pending(), 3);
    sleep(100).await;
    offline.close();
    // A twin of that outbox (another tab, or a crash before the acks arrived) will replay it too.
    let twin_db = unique("twin");
    {
        let from = Persist::open(&db).await.unwrap();
        let loaded = from.load().await.unwrap();
        from.close();
        let to = Persist::open(&twin_db).await.unwrap();
        to.save_schema(loaded.schema.as_ref().unwrap()).await.unwrap();
        for p in &loaded.outbox {
            to.put_pending(p).await.unwrap();
        }
        to.close();
    }

    // Meanwhile another client changes something: the reloaded store must get it as a delta.
    let other = unique("other");
    http(
        "POST",
        "/api/branches/demo/modules/pos/tables/dining_tables",
        Some(json!({"record": {"id": other, "name": "remote"}})),
    )
    .await;

    let back = store(ws, &db);
    let (snapshots, cb) = recorder();
    back.on("snapshot".into(), cb);
    wait(back.connect()).await.unwrap();
    wait(back.ready()).await.unwrap();
    assert!(eventually(5000, || back.pending() == 0).await, "the outbox drained");
    assert!(
        snapshots.borrow().iter().any(|s| s["source"] == "delta"),
        "reconnected with its cursor: {:?}",
        snapshots.borrow()
    );
    assert_eq!(rust(back.get_record("dining_tables".into(), JsValue::from_str(&other)))["name"], "remote");
    let twin = store(ws, &twin_db);
    wait(twin.connect()).await.unwrap();
    wait(twin.ready()).await.unwrap();
    assert!(eventually(5000, || twin.pending() == 0).await, "the replayed outbox was acknowledged");
    let rows = http("GET", "/api/branches/demo/modules/pos/tables/dining_tables?limit=10000", None).await;
    for id in &ids {
        let n = rows["rows"].as_array().unwrap().iter().filter(|r| r["id"] == id.as_str()).count();
        assert_eq!(n, 1, "{id} stored exactly once");
    }
    back.close();
    twin.close();
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
        p.write_rows(rows, 10_000, true, None, false).await.unwrap();
        p.close();
    }
    let started = js_sys::Date::now();
    let s = store(OFFLINE_WS, &db);
    wait(s.connect()).await.unwrap();
    let rows = s.query("dining_tables".into(), js(json!({"where": {"seats": 4}, "limit": 20}))).unwrap();
    let took = js_sys::Date::now() - started;
    assert_eq!(rust(rows).as_array().unwrap().len(), 20);
    assert_eq!(rust(s.list_table("dining_tables".into())).as_array().unwrap().len(), 10_000);
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
        let _ = a.insert("dining_tables".into(), js(json!({"id": id, "name": "from tab A"})), JsValue::UNDEFINED);
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

/// A small deterministic generator, so a failing case is the same on every run.
struct Cases(u64);

impl Cases {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn sample(ty: &str, seed: usize) -> Value {
    match ty {
        "integer" => json!(seed as i64),
        "decimal" => json!(seed as f64 / 4.0),
        "boolean" => json!(seed.is_multiple_of(2)),
        "json" => json!({"ar": "اسم", "en": format!("n{seed}")}),
        "timestamp" => json!("2025-12-06T14:22:20.349Z"),
        "date" => json!("2025-12-06"),
        _ => json!(format!("v{seed}")),
    }
}

/// The same partial inserts through the store (wasm `mishkah-core`, the optimistic row) and
/// through the server (native `mishkah-core`, the stored row) give the same row: for random
/// tables of the demo schema and random subsets of their fields, absent, `null` or `""`, with
/// and without a key. Times differ (each side stamps its own clock), so timestamps are compared
/// by presence.
#[wasm_bindgen_test]
async fn partial_inserts_fill_the_same_row_in_the_browser_and_on_the_server() {
    let Some(_) = server() else { return };
    let schema = http("GET", "/api/branches/demo/modules/pos/schema", None).await["schema"].clone();
    let db = unique("fill");
    {
        let p = Persist::open(&db).await.unwrap();
        p.save_schema(&schema).await.unwrap();
        p.close();
    }
    // Offline: the store answers from its own core alone.
    let s = store(OFFLINE_WS, &db);
    wait(s.connect()).await.unwrap();
    let tables = ["order_header", "order_line", "dining_tables", "menu_items", "kitchen_sections", "payment_methods"];
    let mut gen = Cases(0x9E37_79B9_7F4A_7C15);
    let run = unique("p");
    for case in 0..40 {
        let table = tables[gen.pick(tables.len())];
        let fields = schema["tables"][table]["fields"].as_array().unwrap().clone();
        let mut record = serde_json::Map::new();
        let keyed = gen.pick(2) == 0;
        if keyed {
            record.insert("id".into(), json!(format!("{run}-{case}")));
        }
        for f in fields.iter().filter(|f| f["primary_key"] != json!(true)) {
            let name = f["name"].as_str().unwrap().to_owned();
            match gen.pick(4) {
                0 => {}
                1 => drop(record.insert(name, Value::Null)),
                2 => drop(record.insert(name, json!(""))),
                _ => drop(record.insert(name, sample(f["type"].as_str().unwrap(), case))),
            }
        }
        let before: Vec<Value> = rust(s.list_table(table.into())).as_array().unwrap().clone();
        let _pending = s.insert(table.into(), js(Value::Object(record.clone())), JsValue::UNDEFINED);
        let after: Vec<Value> = rust(s.list_table(table.into())).as_array().unwrap().clone();
        // By key: pending rows are re-derived (and re-stamped) on every read.
        let optimistic =
            after.iter().find(|r| !before.iter().any(|b| b["id"] == r["id"])).cloned().unwrap_or_else(|| {
                panic!("case {case}: the store refused an insert of {table} that only lacks fields: {record:?}")
            });
        if !keyed {
            assert!(optimistic["id"].as_str().is_some_and(|id| !id.is_empty()), "a keyless insert got a key");
        }
        // The server gets the same record, with the key the store chose.
        record.insert("id".into(), optimistic["id"].clone());
        let answer = http(
            "POST",
            &format!("/api/branches/demo/modules/pos/tables/{table}"),
            Some(json!({"record": Value::Object(record.clone())})),
        )
        .await;
        let stored = answer["record"].as_object().unwrap_or_else(|| panic!("case {case}: {answer}")).clone();
        let optimistic = optimistic.as_object().unwrap();
        let timestamp = |name: &str| {
            matches!(name, "createdAt" | "updatedAt")
                || fields.iter().any(|f| f["name"] == name && (f["type"] == "timestamp" || f["type"] == "date"))
        };
        let names: std::collections::BTreeSet<&String> = stored.keys().chain(optimistic.keys()).collect();
        for name in names {
            if timestamp(name) {
                assert!(stored.contains_key(name) && optimistic.contains_key(name), "case {case}: {name} in both");
            } else {
                assert_eq!(
                    stored.get(name),
                    optimistic.get(name),
                    "case {case} ({table}): `{name}` differs for {record:?}"
                );
            }
        }
    }
    s.close();
}

fn subscriptions_store(ws: &str, db: &str) -> Store {
    let http = SERVER_HTTP.unwrap_or("http://127.0.0.1:9");
    let options = json!({"branchId": "demo", "moduleId": "pos", "wsUrl": ws, "httpUrl": http, "dbName": db,
                         "autoReconnect": true, "sync": "subscriptions"});
    create_store(js(options)).unwrap()
}

fn subscribe(store: &Store, table: &str, query: Value) -> (Promise, Function) {
    let sub = store.subscribe(table.into(), js(query), JsValue::UNDEFINED).unwrap();
    let ready: Promise = Reflect::get(&sub, &"ready".into()).unwrap().unchecked_into();
    let unsubscribe: Function = Reflect::get(&sub, &"unsubscribe".into()).unwrap().unchecked_into();
    (ready, unsubscribe)
}

fn held_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = rust(store.list_table("dining_tables".into()))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids
}

async fn cached_ids(db: &str) -> Vec<String> {
    let p = Persist::open(db).await.unwrap();
    let loaded = p.load().await.unwrap();
    p.close();
    let mut ids: Vec<String> =
        loaded.rows.iter().map(|(_, r)| r["id"].as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    ids
}

#[wasm_bindgen_test]
async fn a_subscriptions_store_holds_only_subscribed_rows_on_the_device_and_watches_them_offline() {
    let Some(ws) = server() else { return };
    let tag = unique("live");
    let path = "/api/branches/demo/modules/pos/tables/dining_tables";
    let (big, small, other) = (format!("{tag}-big"), format!("{tag}-small"), format!("{tag}-other"));
    for (id, name, seats) in [(&big, tag.as_str(), 6), (&small, tag.as_str(), 2), (&other, "someone else", 6)] {
        http("POST", path, Some(json!({"record": {"id": id, "name": name, "seats": seats}}))).await;
    }
    let db = unique("subs");
    let store = subscriptions_store(ws, &db);
    wait(store.connect()).await.unwrap();
    wait(store.ready()).await.unwrap();
    assert!(held_ids(&store).is_empty(), "nothing is held before a subscription");

    // Both forms of the filter language; the two hold `big` together.
    let (ready_big, unsubscribe_big) =
        subscribe(&store, "dining_tables", json!(format!("name = \"{tag}\" && seats >= 4")));
    let (ready_all, unsubscribe_all) = subscribe(&store, "dining_tables", json!({"where": {"name": tag}}));
    wait(ready_big).await.unwrap();
    wait(ready_all).await.unwrap();
    assert_eq!(held_ids(&store), [big.clone(), small.clone()], "only the subscribed rows");
    sleep(100).await;
    assert_eq!(cached_ids(&db).await, [big.clone(), small.clone()], "only the subscribed rows reach IndexedDB");
    let query = store.query("dining_tables".into(), js(json!("seats >= 4"))).unwrap();
    assert_eq!(rust(query).as_array().unwrap().len(), 1, "query takes the string form too");

    // A row that stops matching every subscription leaves the device.
    http("PATCH", path, Some(json!({"record": {"id": small, "name": "renamed"}}))).await;
    assert!(eventually(3000, || held_ids(&store) == [big.clone()]).await, "{:?}", held_ids(&store));
    sleep(100).await;
    assert_eq!(cached_ids(&db).await, std::slice::from_ref(&big));
    // A row entering arrives live.
    let late = format!("{tag}-late");
    http("POST", path, Some(json!({"record": {"id": late, "name": tag, "seats": 1}}))).await;
    assert!(eventually(3000, || held_ids(&store) == [big.clone(), late.clone()]).await);

    // One subscription ends: what the other still holds stays.
    unsubscribe_all.call0(&JsValue::NULL).unwrap();
    assert_eq!(held_ids(&store), std::slice::from_ref(&big), "`late` was held only by the ended subscription");
    sleep(150).await;
    store.close();

    // Offline: the cache and the remaining subscription's rows are there, and watch works.
    let offline = subscriptions_store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let (seen, cb) = recorder();
    let _stop = offline.watch("dining_tables".into(), js(json!({"where": {"seats": {"gte": 4}}})), cb).unwrap();
    assert_eq!(seen.borrow().last().unwrap().as_array().unwrap().len(), 1, "watch over the held rows, offline");
    let (ready, _) = subscribe(&offline, "dining_tables", json!(format!("name = \"{tag}\" && seats >= 4")));
    wait(ready).await.expect("a cached subscription is ready at once, offline");
    let _ = unsubscribe_big;
    offline.close();
    let _ = other;
}

/// A second server the test script starts with `--auth required` and the demo rules
/// (`data/security/rules.demo.json`), and tokens it minted for a hot-section kitchen and a cashier.
const RULES_WS: Option<&str> = option_env!("MISHKAH_TEST_RULES_WS");
const RULES_HTTP: Option<&str> = option_env!("MISHKAH_TEST_RULES_HTTP");
const KITCHEN_TOKEN: Option<&str> = option_env!("MISHKAH_TEST_KITCHEN_TOKEN");
const CASHIER_TOKEN: Option<&str> = option_env!("MISHKAH_TEST_CASHIER_TOKEN");

async fn http_as(base: &str, token: &str, method: &str, path: &str, body: Value) -> Value {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().unwrap();
    headers.set("authorization", &format!("Bearer {token}")).unwrap();
    headers.set("content-type", "application/json").unwrap();
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body.to_string()));
    let resp: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str_and_init(&format!("{base}{path}"), &init))
            .await
            .unwrap()
            .unchecked_into();
    rust(JsFuture::from(resp.json().unwrap()).await.unwrap())
}

fn kitchen_store(ws: &str, http: &str, db: &str, token: &str) -> Store {
    create_store(js(json!({"branchId": "demo", "moduleId": "pos", "wsUrl": ws, "httpUrl": http, "dbName": db,
                           "token": token, "autoReconnect": false})))
    .unwrap()
}

#[wasm_bindgen_test]
async fn a_write_the_rules_deny_is_refused_offline_at_once_and_never_reaches_the_outbox() {
    let (Some(ws), Some(http), Some(kitchen), Some(cashier)) = (RULES_WS, RULES_HTTP, KITCHEN_TOKEN, CASHIER_TOKEN)
    else {
        assert!(option_env!("CI") != Some("true"), "CI=true but the rules server is not set: run scripts/test-wasm");
        return;
    };
    // A cashier opens an order with a line for the hot kitchen.
    let order = unique("O");
    let line = unique("L");
    let path = "/api/branches/demo/modules/pos/tables";
    let opened = http_as(
        http,
        cashier,
        "POST",
        &format!("{path}/order_header"),
        json!({"record": {"id": order, "status": "open", "stage": "sent", "orderType": "dine_in", "total": 0}}),
    )
    .await;
    assert_eq!(opened["status"], "created", "{opened}");
    let added = http_as(
        http,
        cashier,
        "POST",
        &format!("{path}/order_line"),
        json!({"record": {"id": line, "orderId": order, "itemId": "m1", "kitchenSectionId": "hot", "quantity": 2,
                          "unitPrice": 10, "total": 20, "status": "queued"}}),
    )
    .await;
    assert_eq!(added["status"], "created", "{added}");

    // The hot kitchen's device syncs once: the schema, its rules, its identity and the line.
    let db = unique("rules");
    let online = kitchen_store(ws, http, &db, kitchen);
    wait(online.connect()).await.unwrap();
    assert!(
        eventually(5000, || !rust(online.get_record("order_line".into(), JsValue::from_str(&line))).is_null()).await,
        "the kitchen got its section's line"
    );
    online.close();
    sleep(100).await;

    // Offline now: what the rules deny fails at once, and nothing of it is queued.
    let offline = kitchen_store(OFFLINE_WS, "http://127.0.0.1:9", &db, kitchen);
    wait(offline.connect()).await.unwrap();
    let denied = [
        ("order_header", "insert", json!({"id": unique("O"), "status": "open"}), "forbidden"),
        ("order_line", "insert", json!({"id": unique("L"), "orderId": order, "kitchenSectionId": "hot"}), "forbidden"),
        ("order_line", "merge", json!({"id": line, "quantity": 5}), "forbidden"),
        ("order_line", "merge", json!({"id": line, "status": "paid"}), "forbidden"),
        ("order_line", "remove", json!({"id": line}), "forbidden"),
        ("menu_items", "insert", json!({"id": unique("M")}), "forbidden"),
    ];
    for (table, action, record, code) in denied {
        let promise = match action {
            "insert" => offline.insert(table.into(), js(record.clone()), JsValue::UNDEFINED),
            "merge" => offline.merge(table.into(), js(record.clone()), JsValue::UNDEFINED),
            _ => offline.remove(table.into(), js(record.clone()), JsValue::UNDEFINED),
        };
        let err = wait(promise).await.unwrap_err();
        assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), code, "{table} {action} {record}");
        assert_eq!(offline.pending(), 0, "{table} {action}: a refused write never reaches the outbox");
    }
    // What the rules allow is queued as ever: the kitchen moves its own line on.
    let _ = offline.merge("order_line".into(), js(json!({"id": line, "status": "preparing"})), JsValue::UNDEFINED);
    assert_eq!(offline.pending(), 1);
    assert_eq!(rust(offline.get_record("order_line".into(), JsValue::from_str(&line)))["status"], "preparing");
    sleep(100).await;
    offline.close();
    let reopened = kitchen_store(OFFLINE_WS, "http://127.0.0.1:9", &db, kitchen);
    wait(reopened.connect()).await.unwrap();
    assert_eq!(reopened.pending(), 1, "the IndexedDB outbox holds the allowed write and nothing else");
    reopened.close();
}

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

async fn stored(table: &str, id: &str) -> Value {
    let rows = http("GET", &format!("/api/branches/demo/modules/pos/tables/{table}?limit=10000"), None).await;
    let found: Vec<Value> = rows["rows"].as_array().unwrap().iter().filter(|r| r["id"] == id).cloned().collect();
    assert!(found.len() <= 1, "{id} stored {} times", found.len());
    found.into_iter().next().unwrap_or(Value::Null)
}

#[wasm_bindgen_test]
async fn a_transaction_runs_again_on_fresh_data_after_a_conflict_and_commits_whole() {
    let Some(ws) = server() else { return };
    let s = store(ws, &unique("tx"));
    wait(s.connect()).await.unwrap();
    wait(s.ready()).await.unwrap();
    let order = unique("o");
    wait(s.insert("order_header".into(), js(json!({"id": order})), JsValue::UNDEFINED)).await.unwrap();

    // Someone else changes the order while the first run is under way: the server refuses that
    // run, and the function runs again on the order as it is now.
    let (runs, table) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let f = read_then_write(&order, &table, runs.clone(), |run| run == 1);
    let ack = rust(wait(s.transaction(f, JsValue::UNDEFINED)).await.expect("committed"));
    assert_eq!((runs.get(), &ack["value"]), (2, &json!(2)), "{ack}");
    let results = ack["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{ack}");
    assert!(ack["transactionId"].is_string(), "{ack}");
    assert_eq!(stored("order_header", &order).await["note"], "mine after theirs 1");
    assert_eq!(stored("dining_tables", &table).await["name"], "tx");
    assert_eq!(rust(s.get_record("order_header".into(), JsValue::from_str(&order)))["note"], "mine after theirs 1");
    assert_eq!(s.pending(), 0);

    // A transaction whose reads change on every run gives up after its attempts, and nothing of
    // it is stored or shown.
    let (runs, lost) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let f = read_then_write(&order, &lost, runs.clone(), |_| true);
    let err = wait(s.transaction(f, js(json!({"attempts": 2})))).await.expect_err("refused");
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "conflict");
    assert_eq!(runs.get(), 2);
    assert_eq!(stored("dining_tables", &lost).await, Value::Null);
    assert_eq!(rust(s.get_record("dining_tables".into(), JsValue::from_str(&lost))), Value::Null);
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
    wait(online.insert("order_header".into(), js(json!({"id": order})), JsValue::UNDEFINED)).await.unwrap();
    sleep(100).await;
    online.close();

    let offline = store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let (runs, table) = (Rc::new(std::cell::Cell::new(0)), unique("T"));
    let queued = offline.transaction(read_then_write(&order, &table, runs.clone(), |_| false), JsValue::UNDEFINED);
    assert!(eventually(2000, || offline.pending() == 1).await, "one outbox entry");
    assert_eq!(
        rust(offline.get_record("order_header".into(), JsValue::from_str(&order)))["note"],
        "mine after nothing"
    );
    assert_eq!(rust(offline.get_record("dining_tables".into(), JsValue::from_str(&table)))["name"], "tx");
    sleep(100).await;
    drop(queued);
    offline.close();
    // The same device's outbox as a crash before the answer arrived left it: replayed too.
    let twin_db = unique("txtwin");
    {
        let from = Persist::open(&db).await.unwrap();
        let loaded = from.load().await.unwrap();
        let client = from.client_id("unused").await.unwrap();
        from.close();
        assert_eq!(loaded.outbox.len(), 1, "the transaction is durable as one entry");
        let to = Persist::open(&twin_db).await.unwrap();
        assert_eq!(to.client_id(&client).await.unwrap(), client);
        to.save_schema(loaded.schema.as_ref().unwrap()).await.unwrap();
        to.put_pending(&loaded.outbox[0]).await.unwrap();
        to.close();
    }

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
