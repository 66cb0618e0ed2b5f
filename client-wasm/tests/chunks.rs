//! The rows in IndexedDB's chunk records, in headless Chromium: changes in many batches (rows
//! inserted before a table's first, a chunk's first rows deleted, chunks split past their size,
//! whole chunks emptied, a stale row refused) leave exactly the rows a map of every change holds; a database of the
//! first layout (a record per row) keeps its outbox and syncs its rows again.

#![cfg(target_arch = "wasm32")]

mod common;

use std::collections::BTreeMap;

use common::*;
use mishkah_client::persist::Persist;
use mishkah_core::{RecordKey, Row, Schema};
use serde_json::json;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn row(key: &str, n: u64, version: u64) -> Row {
    let status = ["open", "paid", "void"][(n % 3) as usize];
    json!({"id": key, "status": status, "n": n, "version": version}).as_object().unwrap().clone()
}

fn indexed_schema() -> Schema {
    Schema::from_json(&json!({"tables": {
        "a": {"fields": {"id": {"type": "text", "primaryKey": true}, "status": {"type": "text", "index": true},
                         "n": {"type": "integer"}}},
        "b": {"fields": {"id": {"type": "text", "primaryKey": true}}}}}))
    .unwrap()
}

#[wasm_bindgen_test]
async fn changes_in_batches_leave_exactly_the_rows_a_map_holds() {
    let db = unique("chunks");
    let p = Persist::open(&db).await.unwrap();
    let schema = indexed_schema();
    let mut model: BTreeMap<(String, String), Row> = BTreeMap::new();
    // A linear congruential sequence: the same batches on every run, spread over every chunk.
    let mut seed: u64 = 7;
    let mut next = |below: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % below
    };
    let mut cursor = 0;
    let mut version = 0;
    for batch in 0..12 {
        let mut changes = Vec::new();
        // The first batches fill; the later ones mix rewrites, deletions and new keys on both ends.
        let size = if batch < 2 { 1500 } else { 400 };
        for _ in 0..size {
            let table = if next(5) == 0 { "b" } else { "a" };
            let key = format!("k{:05}", next(4000) + if batch < 2 { 1000 } else { 0 });
            let delete = batch >= 2 && next(3) == 0;
            version += 1;
            let change = (!delete).then(|| row(&key, next(1000), version));
            match &change {
                Some(r) => model.insert((table.into(), key.clone()), r.clone()),
                None => model.remove(&(table.into(), key.clone())),
            };
            changes.push((table.to_owned(), RecordKey(key), change));
        }
        if batch == 6 {
            // Every row of a range goes: its chunks go with them.
            for key in 1000..2000 {
                let key = format!("k{key:05}");
                model.remove(&("a".into(), key.clone()));
                changes.push(("a".into(), RecordKey(key), None));
            }
        }
        cursor += 1;
        p.write_rows(changes, cursor, false, None, false, Some(&schema)).await.unwrap();
        if batch == 8 {
            // An event older than the row it would replace (it arrived after a newer ack) changes
            // nothing.
            let (table, key) = model.keys().next().unwrap().clone();
            let stale = vec![(table, RecordKey(key.clone()), Some(row(&key, 1, 0)))];
            p.write_rows(stale, cursor, false, None, false, Some(&schema)).await.unwrap();
        }
        let stored: BTreeMap<(String, String), Row> =
            p.rows().await.unwrap().into_iter().map(|(t, k, r)| ((t, k.0), r)).collect();
        assert_eq!(stored.len(), model.len(), "batch {batch}: as many rows as the map");
        assert!(stored == model, "batch {batch}: the stored rows are the map's");
    }
    let loaded = p.load(u64::MAX).await.unwrap();
    assert_eq!(loaded.cursor, cursor);
    assert_eq!(loaded.rows.len(), model.len());
    p.close();
    wait(mishkah_client::store::Store::delete_database(db)).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_database_of_the_first_layout_keeps_its_outbox_and_forgets_its_rows() {
    let db = unique("layout1");
    // What a store of the first layout left: a record per row, its cursor, a pending write.
    let make = js_sys::Function::new_with_args(
        "name",
        r#"return new Promise((resolve, reject) => {
            const open = indexedDB.open(name, 1);
            open.onupgradeneeded = () => { for (const s of ['rows', 'meta', 'outbox']) open.result.createObjectStore(s); };
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
                const tx = open.result.transaction(['rows', 'meta', 'outbox'], 'readwrite');
                tx.objectStore('rows').put({t: 'dining_tables', k: 'T1', r: {id: 'T1', version: 1}}, 'dining_tables\u001fT1');
                tx.objectStore('meta').put(42, 'cursor');
                tx.objectStore('meta').put('client-of-layout-1', 'client');
                tx.objectStore('outbox').put({seq: 1, mutationId: 'm-1', mutation: {table: 'dining_tables', action: 'insert', record: {id: 'T2'}}}, 1);
                tx.oncomplete = () => { open.result.close(); resolve(true); };
                tx.onerror = () => reject(tx.error);
            };
        })"#,
    );
    wait(make.call1(&JsValue::NULL, &JsValue::from_str(&db)).unwrap().into()).await.unwrap();
    let p = Persist::open(&db).await.unwrap();
    let loaded = p.load(u64::MAX).await.unwrap();
    assert_eq!(loaded.cursor, 0, "its rows are gone with the old layout: it syncs again");
    assert!(loaded.rows.is_empty());
    assert_eq!(loaded.outbox.len(), 1, "the pending write is kept");
    assert_eq!(p.client_id("fresh").await.unwrap(), "client-of-layout-1", "so are the client id and its replays");
    p.close();
    wait(mishkah_client::store::Store::delete_database(db)).await.unwrap();
}
