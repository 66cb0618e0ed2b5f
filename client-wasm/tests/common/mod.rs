//! What the browser tests share: the servers the test script started, JS values both ways,
//! waiting, stores, the REST API, and an outbox's twin.

#![allow(dead_code)] // each test binary uses some of these

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use mishkah_client::persist::Persist;
use mishkah_client::store::{create_store, Store};
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub const SERVER_WS: Option<&str> = option_env!("MISHKAH_TEST_WS");
pub const SERVER_HTTP: Option<&str> = option_env!("MISHKAH_TEST_HTTP");
/// A port nothing listens on: a store pointed at it is offline.
pub const OFFLINE_WS: &str = "ws://127.0.0.1:9/ws";

pub fn js(v: Value) -> JsValue {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap()
}

pub fn rust(v: JsValue) -> Value {
    serde_wasm_bindgen::from_value(v).unwrap_or(Value::Null)
}

pub async fn wait(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

pub async fn sleep(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        web_sys::window().unwrap().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).unwrap();
    });
    let _ = JsFuture::from(p).await;
}

/// Polls `check` every 20 ms for up to `ms`.
pub async fn eventually(ms: i32, mut check: impl FnMut() -> bool) -> bool {
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

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", (js_sys::Math::random() * 1e9) as u64)
}

pub fn store(ws: &str, db: &str) -> Store {
    let http = SERVER_HTTP.unwrap_or("http://127.0.0.1:9");
    create_store(js(json!({"branchId": "demo", "moduleId": "pos", "wsUrl": ws, "httpUrl": http, "dbName": db, "autoReconnect": true})))
        .unwrap()
}

pub fn schema() -> Value {
    json!({"tables": {
        "dining_tables": {"name": "dining_tables", "sql_name": "dining_tables", "primary_key": ["id"], "indexes": [],
            "fields": [{"name": "id", "column": "id", "type": "text", "source_type": "string", "nullable": false, "default": null,
                        "max_length": null, "enum_values": null, "primary_key": true, "unique": false, "indexed": false, "references": null}]}
    }, "warnings": []})
}

pub fn recorder() -> (Rc<RefCell<Vec<Value>>>, Function) {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| sink.borrow_mut().push(rust(v)));
    (seen, f.into_js_value().unchecked_into())
}

pub async fn http(method: &str, path: &str, body: Option<Value>) -> Value {
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

pub fn server() -> Option<&'static str> {
    if SERVER_WS.is_none() && option_env!("CI") == Some("true") {
        panic!("CI=true but MISHKAH_TEST_WS is not set: run the browser tests through scripts/test-wasm");
    }
    if SERVER_WS.is_none() {
        web_sys::console::log_1(&"skipped: no MISHKAH_TEST_WS (run scripts/test)".into());
    }
    SERVER_WS
}

pub async fn stored(table: &str, id: &str) -> Value {
    let rows = http("GET", &format!("/api/branches/demo/modules/pos/tables/{table}?limit=10000"), None).await;
    let found: Vec<Value> = rows["rows"].as_array().unwrap().iter().filter(|r| r["id"] == id).cloned().collect();
    assert!(found.len() <= 1, "{id} stored {} times", found.len());
    found.into_iter().next().unwrap_or(Value::Null)
}

/// One JSON answer of a GET.
pub async fn get(url: &str) -> JsValue {
    let resp: web_sys::Response =
        JsFuture::from(web_sys::window().unwrap().fetch_with_str(url)).await.unwrap().unchecked_into();
    JsFuture::from(resp.json().unwrap()).await.unwrap()
}

/// A copy of `db`'s device — its client id, schema and outbox — as another tab, or a crash before
/// the answers arrived, leaves one; and how many pending writes it holds.
pub async fn twin_of(db: &str) -> (String, usize) {
    let twin = unique("twin");
    let from = Persist::open(db).await.unwrap();
    let loaded = from.load(0).await.unwrap();
    let client = from.client_id("unused").await.unwrap();
    from.close();
    let to = Persist::open(&twin).await.unwrap();
    assert_eq!(to.client_id(&client).await.unwrap(), client);
    to.save_schema(loaded.schema.as_ref().unwrap()).await.unwrap();
    for p in &loaded.outbox {
        to.put_pending(p).await.unwrap();
    }
    to.close();
    (twin, loaded.outbox.len())
}
