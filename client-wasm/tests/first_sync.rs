//! A first sync in pages, in headless Chromium against the real server the test script started:
//! a walk cut short after a page shows nothing offline (its rows are no state the server ever
//! had), resumes after that page online, and once the delta completes it the module is whole,
//! offline too.

#![cfg(target_arch = "wasm32")]

mod common;

use common::{get, js, rust, SERVER_HTTP, SERVER_WS};
use js_sys::{Promise, Reflect};
use mishkah_client::persist::{Initial, Persist};
use mishkah_client::store::{create_store, Store};
use serde_json::json;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens on port 9: a store pointed there is offline.
const NOWHERE: &str = "127.0.0.1:9";

fn store(ws: &str, http: &str, db: &str) -> Store {
    create_store(js(json!({"branchId": "demo", "moduleId": "pos", "wsUrl": ws, "httpUrl": http, "dbName": db,
                           "autoReconnect": false})))
    .unwrap()
}

fn offline(db: &str) -> Store {
    store(&format!("ws://{NOWHERE}/ws"), &format!("http://{NOWHERE}"), db)
}

/// Rows per table the store shows.
fn counts(s: &Store, tables: &[String]) -> Vec<usize> {
    tables.iter().map(|t| rust(s.list_table(t.clone()).unwrap()).as_array().map_or(0, Vec::len)).collect()
}

#[wasm_bindgen_test]
async fn a_first_sync_cut_short_shows_nothing_offline_then_resumes_after_its_last_stored_page() {
    let (Some(ws), Some(http)) = (SERVER_WS, SERVER_HTTP) else { return };
    let db = format!("paged-{}", (js_sys::Math::random() * 1e9) as u64);
    // The first page of a walk stored as the store stores it; then the tab is gone.
    let first = get(&format!("{http}/api/branches/demo/modules/pos/pages?limit=4")).await;
    let at = Reflect::get(&first, &"sequence".into()).unwrap().as_f64().unwrap() as u64;
    let next = rust(Reflect::get(&first, &"next".into()).unwrap());
    assert!(next.is_object(), "the module holds more than one page of 4 rows");
    {
        let p = Persist::open(&db).await.unwrap();
        p.begin_initial().await.unwrap();
        p.write_page(&first, &Initial { at: Some(at), next: Some(next), paged: false }, None).await.unwrap();
        p.close();
    }
    let snapshot = rust(get(&format!("{http}/api/branches/demo/modules/pos")).await);
    let tables: Vec<String> = snapshot["tables"].as_object().unwrap().keys().cloned().collect();
    let whole: Vec<usize> = tables.iter().map(|t| snapshot["tables"][t].as_array().unwrap().len()).collect();

    let s = offline(&db);
    JsFuture::from(s.connect()).await.unwrap();
    assert_eq!(counts(&s, &tables).iter().sum::<usize>(), 0, "a walk cut short shows none of its rows");
    assert_eq!(s.cursor(), 0.0, "and claims no sequence");
    s.close();

    let s = store(ws, http, &db);
    JsFuture::from(s.connect()).await.unwrap();
    JsFuture::from(s.ready()).await.unwrap();
    assert_eq!(counts(&s, &tables), whole, "online, the walk goes on and the module is whole");
    assert!(s.cursor() >= snapshot["version"].as_f64().unwrap(), "at the delta's end");
    // The delta's save releases the rows (asynchronously): wait for IndexedDB to say so.
    let p = Persist::open(&db).await.unwrap();
    for _ in 0..100 {
        if p.initial().await.unwrap().is_none() {
            break;
        }
        let tick = Promise::new(&mut |resolve, _| {
            web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 20).unwrap();
        });
        JsFuture::from(tick).await.unwrap();
    }
    assert_eq!(p.initial().await.unwrap(), None, "the first sync is complete in IndexedDB");
    p.close();
    s.close();

    let s = offline(&db);
    JsFuture::from(s.connect()).await.unwrap();
    assert_eq!(counts(&s, &tables), whole, "reopened offline, every row is there");
    s.close();
}
