//! What the original's POS and kitchen apps need of the server, on the real binary
//! (`../shared/spec/apps.md`): the discovery routes' shapes, sequences, the order routes (one
//! transaction), table names as the apps spell them, re-inserts, values stored as sent.

mod common;

use common::*;
use serde_json::{json, Value};

fn order(id: &str, lines: Value) -> Value {
    json!({"order": {"id": id, "shiftId": "S-1", "posId": "P001", "posNumber": 1, "status": "open",
                     "type": "dine_in", "tableIds": ["T01"], "totals": {"subtotal": 150, "due": 150},
                     "version": 1, "notes": ["no onions"], "lines": lines,
                     "payments": [{"method": "cash", "amount": 50}]}})
}

fn line(id: &str) -> Value {
    json!({"id": id, "itemId": "item-1", "name": {"ar": "كشري", "en": "Koshary"}, "qty": 3, "price": 50,
           "status": "draft", "kitchenSection": "hot", "notes": []})
}

async fn rows(server: &TestServer, branch: &str, table: &str) -> Vec<Value> {
    get_json(&server.module_url(branch, &format!("/tables/{table}?limit=10000"))).await["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn schema_answers_per_module_with_the_document_as_written() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let body = get_json(&server.url(&format!("/api/schema?branch={}&module=pos", urlencode(s.branch)))).await;
    let pos = &body["modules"]["pos"];
    let keys: Vec<&str> = pos.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["moduleId", "branchId", "label", "description", "tables", "config", "schemaSource", "schema"]);
    assert_eq!(body["branchId"], s.branch);
    let doc_tables = pos["schema"]["schema"]["tables"].as_array().or(pos["schema"]["tables"].as_array());
    let names: Vec<String> = match doc_tables {
        Some(list) => list.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect(),
        None => pos["schema"]["tables"].as_object().expect("tables").keys().cloned().collect(),
    };
    for table in ["order_header", "order_line", "menu_items", "pos_shift"] {
        assert!(names.iter().any(|n| n == table), "{table} in the document");
        assert!(pos["tables"].as_array().unwrap().iter().any(|n| n == table), "{table} listed");
    }
    assert_eq!(pos["config"]["tables"], pos["tables"]);
    assert!(body.get("schema").is_none() && body.get("data").is_none(), "no top-level schema/data: {body}");
    // Only what `include` names; an unknown module is a warning, not an entry.
    let seeded = get_json(&server.url("/api/schema?module=pos,nothing&include=config")).await;
    assert!(seeded["modules"]["pos"].get("schema").is_none());
    assert!(seeded["modules"]["pos"]["config"].is_object());
    assert_eq!(seeded["warnings"], json!([{"moduleId": "nothing", "warning": "module-not-defined"}]));
    // `/api/modules` is an array in modules.json order; `/api/schemas` lists files and branch schemas.
    let modules = get_json(&server.url("/api/modules")).await;
    assert!(modules["modules"].as_array().unwrap().iter().any(|m| m["id"] == "pos" && m["tables"].is_array()));
    let schemas = get_json(&server.url("/api/schemas")).await;
    assert!(schemas["global"].is_array() && schemas["branches"].is_object(), "{schemas}");
    let (status, bad) = get_status(&server.url("/api/schemas/whatever")).await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("invalid-path")));
    let (status, missing) = get_status(&server.url("/api/schemas/global/nothing")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("schema-not-found")));
}

#[tokio::test]
async fn sequences_answer_the_formatted_id_and_refuse_an_empty_body() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/sequences");
    let (status, body) =
        post_json(&url, json!({"table": "order_header", "field": "id", "record": {"posId": "P001"}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], s.first_order_id);
    assert!(body["value"].is_i64(), "{body}");
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "missing-table-or-field");
    // A sequence nobody configured counts from 1, unformatted, as the original's did.
    let (_, plain) = post_json(&url, json!({"tableName": "orders", "fieldName": "number"})).await;
    assert_eq!((plain["id"].as_str(), plain["value"].as_i64()), (Some("1"), Some(1)), "{plain}");
}

#[tokio::test]
async fn an_order_is_saved_whole_or_not_at_all_and_read_back() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut kitchen, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let url = server.module_url(s.branch, "/orders");

    // A draft is numbered by the branch's rule; header, lines, payment and logs are stored.
    let (status, saved) = post_json(&url, order("draft-1", json!([line("L1"), line("L2")]))).await;
    assert_eq!(status, 201, "{saved}");
    let id = saved["orderId"].as_str().unwrap().to_owned();
    assert_eq!(id, s.first_order_id);
    assert_eq!(saved["order"]["lines"].as_array().unwrap().len(), 2);
    assert_eq!(saved["order"]["payments"][0]["amount"], json!(50));
    assert_eq!(
        saved["order"]["lines"][0]["statusLogs"].as_array().unwrap().len(),
        1,
        "line logs matched on orderLineId"
    );
    assert_eq!(saved["normalized"]["lines"][0]["name"], "كشري");
    let header = rows(&server, s.branch, "order_header").await.into_iter().find(|h| h["id"] == id.as_str()).unwrap();
    assert_eq!(
        (&header["statusId"], &header["orderTypeId"], &header["tableId"]),
        (&json!("open"), &json!("dine_in"), &json!("T01"))
    );
    assert_eq!(header["totalDue"], json!(150));
    assert_eq!(header["notes"][0]["message"], "no onions");
    let lines: Vec<Value> =
        rows(&server, s.branch, "order_line").await.into_iter().filter(|l| l["orderId"] == id.as_str()).collect();
    assert!(lines.iter().all(|l| l["quantity"] == json!(3) && l["unitPrice"] == json!(50) && l["notes"] == json!([])));
    // The kitchen hears every write of the save, header first, as one transaction.
    let first = kitchen.recv_where("the header event", |f| f["type"] == "server:event").await;
    assert_eq!(first["table"], "order_header");
    let txn = first["transactionId"].as_str().expect("a save is a transaction").to_owned();
    let log = get_json(&server.module_url(s.branch, "/events?limit=5000")).await;
    let saved: Vec<&Value> =
        log["events"].as_array().unwrap().iter().filter(|e| e["transactionId"] == txn.as_str()).collect();
    assert!(saved.len() >= 3, "header and both lines at least: {saved:?}");
    assert!(
        saved.windows(2).all(|w| w[1]["sequence"].as_u64() == w[0]["sequence"].as_u64().map(|n| n + 1)),
        "consecutive"
    );

    // A later save that fails on its last line stores nothing: the header keeps its version.
    let mut again =
        order(&id, json!([line("L1"), {"id": "L2", "itemId": "item-1", "qty": 1, "price": 1, "version": 7}]));
    again["order"]["version"] = json!(2);
    let (status, conflict) = post_json(&url, again).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"], "order-version-conflict");
    assert_eq!(conflict["details"]["table"], "order_line");
    let header = rows(&server, s.branch, "order_header").await.into_iter().find(|h| h["id"] == id.as_str()).unwrap();
    assert_eq!(header["version"], json!(1), "nothing of the failed save was stored");

    // An order without lines is refused and burns no number.
    let (status, empty) = post_json(&url, order("draft-2", json!([]))).await;
    assert_eq!((status, empty["error"].as_str()), (422, Some("order-persist-failed")), "{empty}");
    let (status, next) = post_json(&url, order("draft-3", json!([line("L9")]))).await;
    assert_eq!(status, 201, "{next}");
    assert_eq!(next["orderId"], s.second_order_id);

    // Read back: one order, the list, a missing one, an empty body.
    let one = get_json(&server.url(&format!("/api/branches/{}/modules/pos/orders/{id}", urlencode(s.branch)))).await;
    assert_eq!(one["order"]["lines"].as_array().unwrap().len(), 2);
    let list = get_json(&format!("{url}?include=lines,payments")).await;
    assert_eq!(list["meta"]["total"], json!(2));
    assert!(list["orders"].as_array().unwrap().iter().all(|o| o["lines"].is_array() && o["payments"].is_array()));
    let (status, missing) = get_status(&format!("{url}/nothing")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("order-not-found")));
    let (status, _) = post_json(&url, json!({})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn table_names_resolve_as_the_apps_spell_them_on_every_path() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    // REST reads and writes through a plural.
    let menu = get_json(&server.module_url(s.branch, "/tables/menu_item?limit=5")).await;
    assert_eq!(menu["rows"].as_array().unwrap().len(), 5, "{menu}");
    let (status, body) = post_json(
        &server.module_url(s.branch, "/tables/dining_table"),
        json!({"record": dining_table("T-alias", "x")}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(rows(&server, s.branch, "dining_tables").await.iter().any(|r| r["id"] == "T-alias"));
    // WebSocket: a write through an alias is stored under the module's name and its frames carry
    // the name as sent; a query through one reads the table.
    let (mut a, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let (mut b, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    a.send(json!({"type": "client:publish", "branchId": s.branch, "moduleId": "pos", "table": "dining_table",
                  "action": "module:insert", "record": dining_table("T-ws", "y"), "requestId": "r1"}))
        .await;
    let ack = a.recv_where("the ack", |f| f["type"] == "server:ack").await;
    assert_eq!((ack["table"].as_str(), ack["canonicalTable"].as_str()), (Some("dining_table"), Some("dining_tables")));
    let event = b.recv_where("the event", |f| f["type"] == "server:event").await;
    assert_eq!(event["table"], "dining_table");
    assert!(rows(&server, s.branch, "dining_tables").await.iter().any(|r| r["id"] == "T-ws"));
    a.send(json!({"type": "client:query", "requestId": "q1", "moduleId": "pos", "table": "menu_item", "limit": 2}))
        .await;
    let result = a.recv_where("the query result", |f| f["requestId"] == "q1").await;
    assert_ne!(result["type"], "server:error", "{result}");
}

#[tokio::test]
async fn a_reinsert_keeps_the_fields_the_frame_lacks_and_the_version() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/orders");
    let (status, saved) = post_json(&url, order(s.first_order_id, json!([line("L1")]))).await;
    assert_eq!(status, 201, "{saved}");
    let (mut c, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    // The POS's re-insert: no shift, no till, notes as text, version 1.
    c.send(json!({"type": "client:publish", "branchId": s.branch, "moduleId": "pos", "table": "order_header",
                  "action": "module:insert", "requestId": "re",
                  "record": {"id": s.first_order_id, "orderNumber": s.first_order_id, "status": "open", "notes": "", "version": 1}}))
        .await;
    let ack = c.recv_where("the ack", |f| f["requestId"] == "re").await;
    assert_eq!(ack["type"], "server:ack", "{ack}");
    let header =
        rows(&server, s.branch, "order_header").await.into_iter().find(|h| h["id"] == s.first_order_id).unwrap();
    assert_eq!((&header["shiftId"], &header["posId"]), (&json!("S-1"), &json!("P001")), "kept: {header}");
    assert_eq!(header["orderNumber"], s.first_order_id, "merged");
    assert_eq!(header["notes"][0]["message"], "no onions", "text does not replace the list");
    assert_eq!(header["version"], json!(1), "the POS's next current + 1 still holds");
    // REST keeps refusing a duplicate insert.
    let (status, _) =
        post_json(&server.module_url(s.branch, "/tables/order_header"), json!({"record": {"id": s.first_order_id}}))
            .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn values_the_schema_does_not_fit_are_stored_unless_the_module_is_strict() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    // The POS's own shapes: a list in a text field, an id past its maxLength.
    let long_id = "x".repeat(125);
    let record = json!({"id": long_id, "orderId": "o1", "itemId": "i1", "notes": [], "quantity": 1, "unitPrice": 1,
                        "total": 1, "statusId": "queued"});
    {
        let server = TestServer::start(data.path()).await;
        let (status, body) =
            post_json(&server.module_url(s.branch, "/tables/order_line"), json!({"record": record})).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["record"]["notes"], json!([]));
        assert!(server.log().contains("stored a value as sent"), "one warning");
    }
    // A module's own `"validation": "strict"` wins over the server's default.
    let path = data.path().join("modules.json");
    let mut modules = read_json(&path);
    modules["modules"]["pos"]["validation"] = json!("strict");
    write_json(&path, &modules);
    let server = TestServer::start(data.path()).await;
    let mut again = record.clone();
    again["id"] = json!("y".repeat(125));
    let (status, body) = post_json(&server.module_url(s.branch, "/tables/order_line"), json!({"record": again})).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("validation-failed")), "{body}");
}

#[tokio::test]
async fn search_and_filters_find_names_the_schema_does_not_declare() {
    let data = DataCopy::new();
    if !mishkah_test_support::data_source().real {
        return; // dar's seed (menu names in `item_name {ar, en}`) is in the fixtures only
    }
    let server = TestServer::start(data.path()).await;
    let url = server.module_url("dar", "/tables/menu_items");
    let menu = get_json(&format!("{url}?limit=1")).await;
    let name = menu["rows"][0]["item_name"]["ar"].as_str().expect("dar keeps its names in item_name").to_owned();
    let word = name.split_whitespace().next().unwrap().to_owned();
    let hits = reqwest::Client::new().get(format!("{url}/search")).query(&[("q", word.as_str())]).send().await.unwrap();
    let hits: Value = hits.json().await.unwrap();
    assert!(hits["hits"].as_array().unwrap().iter().any(|h| h["row"]["item_name"]["ar"] == name.as_str()), "{hits}");
    let filter = format!("item_name.ar ~ \"{word}\"");
    let page = reqwest::Client::new().get(&url).query(&[("filter", filter.as_str())]).send().await.unwrap();
    let page: Value = page.json().await.unwrap();
    assert!(page["rows"].as_array().unwrap().iter().any(|r| r["item_name"]["ar"] == name.as_str()), "{page}");
}

#[tokio::test]
async fn the_finance_screens_reset_archives_and_clears_the_days_orders() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (status, _) =
        post_json(&server.module_url(s.branch, "/orders"), order(s.first_order_id, json!([line("L1")]))).await;
    assert_eq!(status, 201);
    let (mut watcher, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let url = server.url("/api/manage/purge-live-data");
    let body = json!({"branchId": s.branch, "moduleId": "pos", "reason": "day closed", "requestedBy": "finance",
                      "tables": ["order_header", "orders_lines", "payments", "pos_shifts", "nothing"], "resetEvents": true});
    let (status, reply) = post_json(&url, body).await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply["totalRemoved"].as_u64().unwrap() >= 3, "{reply}");
    let tables = reply["tables"].as_array().unwrap();
    assert!(tables.iter().any(|t| t["table"] == "order_line" && t["status"] == "cleared"), "{reply}");
    assert!(tables.iter().any(|t| t["table"] == "nothing" && t["status"] == "skipped"), "{reply}");
    assert!(reply["historyEntry"]["tables"].is_array());
    assert!(rows(&server, s.branch, "order_header").await.is_empty());
    let gone = watcher.recv_where("a removal", |f| f["type"] == "server:event").await;
    assert_eq!(gone["action"], "module:delete");
    let (status, missing) = post_json(&url, json!({})).await;
    assert_eq!((status, missing["error"].as_str()), (400, Some("missing-branch-id")));
}
