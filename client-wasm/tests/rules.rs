//! The server's write rules in the browser: a write they deny is refused offline, at once, and
//! never reaches the outbox.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;

use js_sys::Reflect;
use mishkah_client::store::{create_store, Store};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

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
        eventually(5000, || !rust(online.get_record("order_line".into(), JsValue::from_str(&line)).unwrap()).is_null())
            .await,
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
            "insert" => offline.insert(table.into(), js(record.clone()), None),
            "merge" => offline.merge(table.into(), js(record.clone()), None),
            _ => offline.remove(table.into(), js(record.clone()), None),
        };
        let err = wait(promise).await.unwrap_err();
        assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), code, "{table} {action} {record}");
        assert_eq!(offline.pending(), 0, "{table} {action}: a refused write never reaches the outbox");
    }
    // What the rules allow is queued as ever: the kitchen moves its own line on.
    let _ = offline.merge("order_line".into(), js(json!({"id": line, "status": "preparing"})), None);
    assert_eq!(offline.pending(), 1);
    assert_eq!(rust(offline.get_record("order_line".into(), JsValue::from_str(&line)).unwrap())["status"], "preparing");
    sleep(100).await;
    offline.close();
    let reopened = kitchen_store(OFFLINE_WS, "http://127.0.0.1:9", &db, kitchen);
    wait(reopened.connect()).await.unwrap();
    assert_eq!(reopened.pending(), 1, "the IndexedDB outbox holds the allowed write and nothing else");
    reopened.close();
}
