//! Live queries (`client:subscribe`) against the real binary: initial rows, then only the moves of
//! the result, resume by cursor, windows, and bad input.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn subscriptions_only(server: &TestServer, branch: &str) -> WsClient {
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": branch, "sync": "subscriptions"})).await;
    ws.recv_type("server:log").await;
    ws
}

fn ids(rows: &Value) -> Vec<String> {
    let mut out: Vec<String> = rows.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    out.sort();
    out
}

async fn live(ws: &mut WsClient, sub: &str) -> (String, String, Value) {
    let f = ws.recv_where("a live change", |f| f["type"] == "server:live" && f["subId"] == sub).await;
    (f["op"].as_str().unwrap().to_owned(), f["key"].as_str().unwrap().to_owned(), f)
}

#[tokio::test]
async fn rows_move_into_and_out_of_a_live_query_and_nothing_else_reaches_the_connection() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(&data.path().join("security/secret_fields.json"), &json!({"secretFields": {"dining_tables": ["note"]}}));
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    post_json(&url, json!({"record": {"id": "l0", "name": "Patio", "seats": 6, "note": "secret"}})).await;
    post_json(&url, json!({"record": {"id": "l9", "name": "Bar", "seats": 2}})).await;

    let mut ws = subscriptions_only(&server, s.branch).await;
    ws.send(json!({"type": "client:subscribe", "subId": "big", "moduleId": "pos", "table": "dining_tables",
                   "filter": r#"id ~ "l" && seats >= 4"#, "requestId": "r1"}))
        .await;
    let first = ws.recv_type("server:subscribed").await;
    assert_eq!((first["requestId"].clone(), first["mode"].clone()), (json!("r1"), json!("rows")), "{first}");
    assert_eq!(ids(&first["rows"]), ["l0"], "{first}");
    assert!(first["rows"][0].get("note").is_none(), "hidden fields never leave: {first}");
    assert!(first["cursor"].as_u64().is_some());

    // Starts matching: an add.
    post_json(&url, json!({"record": {"id": "l1", "name": "Garden", "seats": 4}})).await;
    let (op, key, add) = live(&mut ws, "big").await;
    assert_eq!((op.as_str(), key.as_str(), add["row"]["name"].clone()), ("add", "l1", json!("Garden")), "{add}");
    // Changes and still matches: an update.
    send_json(Method::PATCH, &url, json!({"record": {"id": "l1", "seats": 8}})).await;
    let (op, key, update) = live(&mut ws, "big").await;
    assert_eq!((op.as_str(), key.as_str(), update["row"]["seats"].clone()), ("update", "l1", json!(8)));
    assert!(update["cursor"].as_u64().unwrap() > add["cursor"].as_u64().unwrap());
    // Stops matching: a remove.
    send_json(Method::PATCH, &url, json!({"record": {"id": "l0", "seats": 2}})).await;
    let (op, key, _) = live(&mut ws, "big").await;
    assert_eq!((op.as_str(), key.as_str()), ("remove", "l0"));
    // Deleted: a remove.
    send_json(Method::DELETE, &format!("{url}?id=l1"), Value::Null).await;
    let (op, key, _) = live(&mut ws, "big").await;
    assert_eq!((op.as_str(), key.as_str()), ("remove", "l1"));
    // Rows outside the result, other tables, other modules: nothing at all reaches this socket.
    post_json(&url, json!({"record": {"id": "l2", "name": "Nook", "seats": 1}})).await;
    let orders = server.module_url(s.branch, "/tables/order_header");
    let (status, body) = post_json(&orders, json!({"record": order_header(None)})).await;
    assert_eq!(status, 201, "{body}");
    let quiet = ws.drain(Duration::from_millis(400)).await;
    assert!(quiet.is_empty(), "a connection with only live queries gets only their changes: {quiet:?}");

    // Unsubscribed: silence again, and a second unsubscribe is an error.
    ws.send(json!({"type": "client:unsubscribe", "subId": "big", "requestId": "u1"})).await;
    let done = ws.recv_type("server:unsubscribed").await;
    assert_eq!(done["subId"], json!("big"));
    post_json(&url, json!({"record": {"id": "l3", "name": "Roof", "seats": 9}})).await;
    assert!(ws.drain(Duration::from_millis(300)).await.is_empty());
    ws.send(json!({"type": "client:unsubscribe", "subId": "big", "requestId": "u2"})).await;
    let err = ws.recv_type("server:error").await;
    assert_eq!((err["code"].clone(), err["requestId"].clone()), (json!("unknown-subscription"), json!("u2")));
}

#[tokio::test]
async fn a_live_window_keeps_its_first_rows_in_order_and_refills_when_one_leaves() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, seats) in [("w1", 10), ("w2", 20), ("w3", 30)] {
        post_json(&url, json!({"record": {"id": id, "name": "x", "seats": seats}})).await;
    }
    let mut ws = subscriptions_only(&server, s.branch).await;
    ws.send(json!({"type": "client:subscribe", "subId": "top", "table": "dining_tables", "moduleId": "pos",
                   "filter": {"where": {"id": {"in": ["w1", "w2", "w3", "w4", "w5"]}}}, "sort": "-seats", "limit": 2,
                   "fields": ["id", "seats"]}))
        .await;
    let first = ws.recv_type("server:subscribed").await;
    assert_eq!(first["rows"], json!([{"id": "w3", "seats": 30}, {"id": "w2", "seats": 20}]), "{first}");
    assert_eq!(first["hasMore"], json!(true));
    // Sorts first: in, and the last row of the window out.
    post_json(&url, json!({"record": {"id": "w4", "name": "x", "seats": 40}})).await;
    let (op1, k1, _) = live(&mut ws, "top").await;
    let (op2, k2, added) = live(&mut ws, "top").await;
    assert_eq!([(op1.as_str(), k1.as_str()), (op2.as_str(), k2.as_str())], [("remove", "w2"), ("add", "w4")]);
    assert_eq!(added["row"], json!({"id": "w4", "seats": 40}), "projected to the asked fields");
    // Sorts after the window: nothing.
    post_json(&url, json!({"record": {"id": "w5", "name": "x", "seats": 5}})).await;
    assert!(ws.drain(Duration::from_millis(300)).await.is_empty());
    // A member leaves: the next row (w2) comes back from a read.
    send_json(Method::DELETE, &format!("{url}?id=w4"), Value::Null).await;
    let (op, key, _) = live(&mut ws, "top").await;
    assert_eq!((op.as_str(), key.as_str()), ("remove", "w4"));
    let (op, key, refill) = live(&mut ws, "top").await;
    assert_eq!((op.as_str(), key.as_str(), refill["row"]["seats"].clone()), ("add", "w2", json!(20)), "{refill}");
}

#[tokio::test]
async fn a_reconnecting_client_resumes_from_its_cursor_with_only_what_changed() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, seats) in [("c1", 5), ("c2", 5), ("c3", 5), ("c4", 1), ("c7", 1)] {
        post_json(&url, json!({"record": {"id": id, "name": "x", "seats": seats}})).await;
    }
    let subscribe = |cursor: Option<u64>| {
        json!({"type": "client:subscribe", "subId": "five", "table": "dining_tables", "moduleId": "pos",
               "filter": r#"id in ["c1", "c2", "c3", "c4", "c5", "c6", "c7"] && seats = 5"#, "cursor": cursor})
    };
    let mut ws = subscriptions_only(&server, s.branch).await;
    ws.send(subscribe(None)).await;
    let first = ws.recv_type("server:subscribed").await;
    assert_eq!(ids(&first["rows"]), ["c1", "c2", "c3"]);
    let cursor = first["cursor"].as_u64().unwrap();
    drop(ws);

    // While away: c1 changes, c2 leaves, c4 enters, c5 is new, c3 is untouched; c6 is new and c7
    // changes, neither ever in the result (the client cannot hold them, so they are not named).
    send_json(Method::PATCH, &url, json!({"record": {"id": "c1", "name": "renamed"}})).await;
    send_json(Method::PATCH, &url, json!({"record": {"id": "c2", "seats": 2}})).await;
    send_json(Method::PATCH, &url, json!({"record": {"id": "c4", "seats": 5}})).await;
    post_json(&url, json!({"record": {"id": "c5", "name": "x", "seats": 5}})).await;
    post_json(&url, json!({"record": {"id": "c6", "name": "x", "seats": 1}})).await;
    send_json(Method::PATCH, &url, json!({"record": {"id": "c7", "seats": 3}})).await;

    let mut ws = subscriptions_only(&server, s.branch).await;
    ws.send(subscribe(Some(cursor))).await;
    let resumed = ws.recv_type("server:subscribed").await;
    assert_eq!(resumed["mode"], json!("changes"), "{resumed}");
    assert_eq!(ids(&resumed["rows"]), ["c1", "c4", "c5"], "only the rows that changed: {resumed}");
    assert_eq!(resumed["removed"], json!(["c2"]));
    assert!(resumed["cursor"].as_u64().unwrap() > cursor);
    // Live from there on.
    send_json(Method::PATCH, &url, json!({"record": {"id": "c3", "seats": 9}})).await;
    let (op, key, _) = live(&mut ws, "five").await;
    assert_eq!((op.as_str(), key.as_str()), ("remove", "c3"));

    // A cursor the log does not cover (from another database): the whole result.
    ws.send(json!({"type": "client:subscribe", "subId": "again", "table": "dining_tables", "moduleId": "pos",
                   "filter": r#"id in ["c1", "c4"]"#, "cursor": 1_000_000_000u64}))
        .await;
    let full = ws.recv_where("a full result", |f| f["type"] == "server:subscribed" && f["subId"] == "again").await;
    assert_eq!((full["mode"].clone(), ids(&full["rows"])), (json!("rows"), vec!["c1".to_owned(), "c4".to_owned()]));
}

#[tokio::test]
async fn a_writer_and_a_branch_wide_client_see_live_changes_beside_their_usual_frames() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut ws, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    ws.send(json!({"type": "client:subscribe", "subId": "mine", "table": "dining_tables", "moduleId": "pos",
                   "filter": r#"name = "live-writer""#}))
        .await;
    ws.recv_type("server:subscribed").await;
    ws.send(json!({"type": "client:publish", "moduleId": "pos", "table": "dining_tables", "action": "module:insert",
                   "record": {"id": "ww1", "name": "live-writer", "seats": 2}, "requestId": "w"}))
        .await;
    let frames = [
        ws.recv_where("ack", |f| f["type"] == "server:ack").await,
        ws.recv_where("event", |f| f["type"] == "server:event").await,
    ];
    assert!(frames.iter().all(|f| f.is_object()));
    let (op, key, _) = live(&mut ws, "mine").await;
    assert_eq!((op.as_str(), key.as_str()), ("add", "ww1"));
}

#[tokio::test]
async fn bad_subscriptions_get_structured_errors_and_the_connection_stays_usable() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(
        &data.path().join("security/secret_fields.json"),
        &json!({"secretFields": {"dining_tables": ["note"]}, "lockedTables": ["audit_events"]}),
    );
    let server = TestServer::start(data.path()).await;
    let mut early = WsClient::connect(&server.ws_url()).await;
    early.send(json!({"type": "client:subscribe", "subId": "x", "table": "dining_tables", "requestId": 1})).await;
    let err = early.recv_type("server:error").await;
    assert_eq!(err["code"], json!("not-registered"));

    let mut ws = subscriptions_only(&server, s.branch).await;
    let cases = [
        (json!({"table": "dining_tables", "filter": "seats >"}), "invalid-filter"),
        (json!({"table": "dining_tables", "filter": "note = \"x\""}), "unknown-field"),
        (json!({"table": "dining_tables", "sort": "nope"}), "invalid-sort"),
        (json!({"table": "no_such_table"}), "table-not-found"),
        (json!({"table": "audit_events"}), "table-locked"),
        (json!({"filter": "seats > 1"}), "invalid-frame"),
    ];
    for (i, (body, code)) in cases.iter().enumerate() {
        let mut frame = body.clone();
        frame["type"] = json!("client:subscribe");
        frame["moduleId"] = json!("pos");
        frame["subId"] = json!(format!("s{i}"));
        frame["requestId"] = json!(i);
        ws.send(frame).await;
        let err = ws.recv_where("an error", |f| f["type"] == "server:error" && f["requestId"] == json!(i)).await;
        assert_eq!(err["code"], json!(code), "{body} → {err}");
    }
    ws.send(json!({"type": "client:subscribe", "subId": "ok", "moduleId": "pos", "table": "dining_tables", "filter": "seats > 100"}))
        .await;
    let ok = ws.recv_type("server:subscribed").await;
    assert_eq!(ok["rows"], json!([]));
}
