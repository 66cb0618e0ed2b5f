//! Sync against the real server the test script started: stores seeing each other's writes,
//! conflicts, an offline outbox replayed exactly once, the same partial insert on both sides, and
//! a store that holds only what it subscribes to.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;

use js_sys::{Function, Promise, Reflect};
use mishkah_client::persist::Persist;
use mishkah_client::store::{create_store, Store};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

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
    let ack = wait(a.insert("dining_tables".into(), js(json!({"id": id, "name": "from A", "seats": 2})), None))
        .await
        .unwrap();
    assert_eq!(rust(ack)["type"], "server:ack");
    assert!(
        eventually(3000, || seen.borrow().last().is_some_and(|rows| rows[0]["name"] == "from A")).await,
        "B's watch saw A's insert"
    );
    wait(b.update("dining_tables".into(), js(json!({"id": id, "name": "from B"})), None)).await.unwrap();
    assert!(
        eventually(3000, || rust(a.get_record("dining_tables".into(), JsValue::from_str(&id)).unwrap())["name"]
            == "from B")
        .await
    );
    assert_eq!(rust(a.get_record("dining_tables".into(), JsValue::from_str(&id)).unwrap())["version"], json!(2));
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
    wait(a.insert("order_header".into(), js(json!({"id": id})), None)).await.unwrap();
    sleep(100).await;
    a.close();

    // Offline, A edits the row it saw at version 1: visible at once.
    let offline = store(OFFLINE_WS, &db);
    wait(offline.connect()).await.unwrap();
    let write = offline.merge("order_header".into(), js(json!({"id": id, "note": "mine"})), None);
    assert_eq!(rust(offline.get_record("order_header".into(), JsValue::from_str(&id)).unwrap())["note"], "mine");
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
    assert_eq!(rust(back.get_record("order_header".into(), JsValue::from_str(&id)).unwrap())["note"], "theirs");
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
        let _ = offline.insert("dining_tables".into(), js(json!({"id": id, "name": "queued"})), None);
    }
    assert_eq!(offline.pending(), 3);
    sleep(100).await;
    offline.close();
    // A twin of that outbox (another tab, or a crash before the acks arrived) will replay it too.
    let (twin_db, _) = twin_of(&db).await;

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
    assert_eq!(rust(back.get_record("dining_tables".into(), JsValue::from_str(&other)).unwrap())["name"], "remote");
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
        let before: Vec<Value> = rust(s.list_table(table.into()).unwrap()).as_array().unwrap().clone();
        let _pending = s.insert(table.into(), js(Value::Object(record.clone())), None);
        let after: Vec<Value> = rust(s.list_table(table.into()).unwrap()).as_array().unwrap().clone();
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
    let sub = store.subscribe(table.into(), js(query), None).unwrap();
    let ready: Promise = Reflect::get(&sub, &"ready".into()).unwrap().unchecked_into();
    let unsubscribe: Function = Reflect::get(&sub, &"unsubscribe".into()).unwrap().unchecked_into();
    (ready, unsubscribe)
}

fn held_ids(store: &Store) -> Vec<String> {
    let mut ids: Vec<String> = rust(store.list_table("dining_tables".into()).unwrap())
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
    let loaded = p.load(u64::MAX).await.unwrap();
    p.close();
    let mut ids: Vec<String> =
        loaded.rows.iter().map(|(_, _, r)| r["id"].as_str().unwrap_or_default().to_owned()).collect();
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
