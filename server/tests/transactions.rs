//! `POST .../transactions` (#26): writes across tables commit together or not at all, and only if
//! what the client read still holds; a refused transaction leaves no row, no event, no sequence
//! number behind.

mod common;

use common::attack::{call, head};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_transaction_commits_whole_or_leaves_no_trace() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(b, "/transactions");
    let row = |table: &str, id: &str| {
        let url = server.module_url(b, &format!("/tables/{table}/{id}"));
        async move { call(Method::GET, &url, None, None, Value::Null).await }
    };

    // Two tables, one transaction: consecutive sequences, one answer with every result.
    let tx = json!({"requestId": "t1", "includeRecords": true,
        "reads": [{"table": "dining_tables", "id": "T-TX-1", "exists": false}],
        "writes": [
            {"action": "insert", "table": "dining_tables", "record": dining_table("T-TX-1", "window")},
            {"action": "insert", "table": "order_header", "record": order_header(None)}]});
    let (status, body) = call(Method::POST, &url, None, None, tx).await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{body}");
    let first = body["firstSequence"].as_u64().expect("a first sequence");
    assert_eq!(body["lastSequence"].as_u64(), Some(first + 1), "{body}");
    let order = results[1]["id"].as_str().expect("the order's id").to_owned();
    let (_, stored) = row("order_header", &order).await;
    let invoice = stored["record"]["invoiceSequence"].as_i64().expect("an invoice number");
    assert_eq!(results[1]["row"], stored["record"], "the answer carries each row as stored");
    let version = row("dining_tables", "T-TX-1").await.1["record"]["version"].as_i64().expect("a version");

    let before = head(&server, b, None).await;
    let refused = [
        // What the client read changed: a stale version, a row that now exists.
        (
            json!({"reads": [{"table": "dining_tables", "id": "T-TX-1", "version": version + 7}],
            "writes": [{"action": "insert", "table": "order_header", "record": order_header(None)},
                       {"action": "merge", "table": "dining_tables", "record": {"id": "T-TX-1", "name": "stale"}}]}),
            "precondition-failed",
        ),
        (
            json!({"reads": [{"table": "dining_tables", "id": "T-TX-1", "exists": false}],
            "writes": [{"action": "insert", "table": "order_header", "record": order_header(None)}]}),
            "precondition-failed",
        ),
        // A write refused after others of the same transaction passed.
        (
            json!({"writes": [{"action": "insert", "table": "order_header", "record": order_header(None)},
                           {"action": "insert", "table": "dining_tables", "record": dining_table("T-TX-2", "new")},
                           {"action": "insert", "table": "dining_tables", "record": dining_table("T-TX-1", "taken")}]}),
            "batch-aborted",
        ),
    ];
    for (tx, code) in refused {
        let (status, body) = call(Method::POST, &url, None, None, tx).await;
        assert_eq!((status, body["error"].as_str()), (409, Some(code)), "{body}");
    }
    assert_eq!(head(&server, b, None).await, before, "a refused transaction logs nothing");
    assert_eq!(row("dining_tables", "T-TX-2").await.0, 404, "nor keeps a row");
    let (_, table) = row("dining_tables", "T-TX-1").await;
    assert_eq!(
        (table["record"]["name"].as_str(), table["record"]["version"].as_i64()),
        (Some("window"), Some(version))
    );

    // The invoice numbers the refused transactions drew were given back.
    let tx = json!({"reads": [{"table": "dining_tables", "id": "T-TX-1", "version": version}],
        "writes": [{"action": "insert", "table": "order_header", "record": order_header(None)}]});
    let (status, body) = call(Method::POST, &url, None, None, tx).await;
    assert_eq!(status, 200, "{body}");
    let next = body["results"][0]["id"].as_str().expect("an id").to_owned();
    let (_, stored) = row("order_header", &next).await;
    assert_eq!(stored["record"]["invoiceSequence"].as_i64(), Some(invoice + 1), "{stored}");

    // Bad requests are told so, and change nothing.
    for (tx, code) in [
        (json!({"writes": []}), "invalid-transaction"),
        (json!({"writes": [{"action": "explode", "table": "dining_tables", "record": {}}]}), "unknown-action"),
        (
            json!({"reads": [{"table": "dining_tables", "id": "T-TX-1"}],
                "writes": [{"action": "insert", "table": "dining_tables", "record": dining_table("T-TX-3", "x")}]}),
            "invalid-transaction",
        ),
        (
            json!({"reads": [{"table": "nope", "id": "x", "exists": false}],
                "writes": [{"action": "insert", "table": "dining_tables", "record": dining_table("T-TX-3", "x")}]}),
            "table-not-found",
        ),
        (json!("not an object"), "invalid-body"),
    ] {
        let (status, body) = call(Method::POST, &url, None, None, tx).await;
        assert!(matches!(status, 400 | 404), "{status} {body}");
        assert_eq!(body["error"].as_str(), Some(code), "{body}");
    }
    assert_eq!(row("dining_tables", "T-TX-3").await.0, 404);
}

/// Every `server:events` frame and `server:event` frame a client got within `window`.
async fn change_frames(ws: &mut WsClient, window: std::time::Duration) -> Vec<Value> {
    let frames = ws.drain(window).await;
    frames.into_iter().filter(|f| matches!(f["type"].as_str(), Some("server:events" | "server:event"))).collect()
}

#[tokio::test]
async fn over_the_websocket_a_transaction_is_one_answer_its_events_one_frame_and_a_retry_commits_nothing_more() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let hello = |compact: bool| {
        let mut h = json!({"type": "client:hello", "branchId": b, "requestSnapshot": false});
        if compact {
            h["frames"] = json!("compact");
        }
        h
    };
    let mut compact = WsClient::connect(&server.ws_url()).await;
    compact.send(hello(true)).await;
    compact.recv_type("server:log").await;
    let mut original = WsClient::connect(&server.ws_url()).await;
    original.send(hello(false)).await;
    original.recv_type("server:log").await;
    let mut writer = WsClient::connect(&server.ws_url()).await;
    writer.send(hello(false)).await;
    writer.recv_type("server:log").await;

    let tx = json!({"type": "client:transaction", "moduleId": "pos", "requestId": "tx-1", "mutationId": "tx-1",
        "reads": [{"table": "dining_tables", "id": "T-WS-1", "exists": false}],
        "writes": [
            {"action": "insert", "table": "dining_tables", "record": dining_table("T-WS-1", "one")},
            {"action": "insert", "table": "order_header", "record": order_header(None)},
            {"action": "insert", "table": "dining_tables", "record": dining_table("T-WS-2", "two")}]});
    writer.send(tx.clone()).await;
    let ack = writer.recv_where("the transaction's answer", |f| f["requestId"] == "tx-1").await;
    assert_eq!(ack["type"], "server:transaction", "{ack}");
    let results = ack["results"].as_array().cloned().unwrap_or_default();
    let sequences: Vec<u64> = results.iter().filter_map(|r| r["sequence"].as_u64()).collect();
    assert_eq!(sequences.len(), 3, "{ack}");
    assert!(sequences.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {ack}");
    let txn = ack["transactionId"].as_str().expect("a transaction id").to_owned();

    // A compact subscriber gets the transaction in one frame, each change tagged with it; an
    // original-shape subscriber gets its three events, tagged too.
    let window = std::time::Duration::from_millis(700);
    let frames = change_frames(&mut compact, window).await;
    assert_eq!(frames.len(), 1, "one frame: {frames:?}");
    let changes = frames[0]["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.iter().map(|c| c["seq"].as_u64().unwrap_or(0)).collect::<Vec<_>>(), sequences);
    assert!(changes.iter().all(|c| c["txn"] == txn.as_str()), "{changes:?}");
    let events = change_frames(&mut original, window).await;
    assert_eq!(events.iter().map(|e| e["sequence"].as_u64().unwrap_or(0)).collect::<Vec<_>>(), sequences);
    assert!(events.iter().all(|e| e["transactionId"] == txn.as_str()), "{events:?}");
    // The log keeps the transaction's id with each of its events, and none with a lone write.
    let (status, _) =
        post_json(&server.module_url(b, "/tables/dining_tables"), json!({"record": dining_table("T-WS-3", "lone")}))
            .await;
    assert_eq!(status, 201);
    let log = get_json(&server.module_url(b, &format!("/events?after={}", sequences[0] - 1))).await;
    let logged: Vec<Value> = log["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(logged.len(), 4, "{log}");
    assert!(logged[..3].iter().all(|e| e["transactionId"] == txn.as_str()), "{log}");
    assert!(logged[3].get("transactionId").is_none(), "{log}");
    let _ = change_frames(&mut compact, std::time::Duration::from_millis(300)).await;

    // A retry (its connection lost before the answer) commits nothing more and gets the same
    // answer, though its read no longer holds; the same id for another transaction is refused.
    let before = head(&server, b, None).await;
    writer.send(tx.clone()).await;
    let again = writer.recv_where("the retry's answer", |f| f["requestId"] == "tx-1").await;
    assert_eq!(again["type"], "server:transaction", "{again}");
    assert_eq!(again["results"], ack["results"], "{again}");
    assert_eq!(again["transactionId"], ack["transactionId"]);
    let mut other = tx.clone();
    other["writes"][0]["record"]["name"] = json!("another");
    other["requestId"] = json!("tx-1b");
    writer.send(other).await;
    let refused = writer.recv_where("the reuse's answer", |f| f["requestId"] == "tx-1b").await;
    assert_eq!(refused["type"], "server:error", "{refused}");
    assert_eq!(refused["details"]["code"], "mutation-id-reused", "{refused}");

    // A read that no longer holds: an error frame naming it, and nothing stored or sent.
    writer
        .send(json!({"type": "client:transaction", "requestId": "tx-2",
            "reads": [{"table": "dining_tables", "id": "T-WS-1", "exists": false}],
            "writes": [{"action": "insert", "table": "order_header", "record": order_header(None)}]}))
        .await;
    let failed = writer.recv_where("the refusal", |f| f["requestId"] == "tx-2").await;
    assert_eq!((failed["type"].as_str(), failed["code"].as_str()), (Some("server:error"), Some("precondition-failed")));
    assert_eq!(failed["details"]["index"], 0, "{failed}");
    assert_eq!(failed["details"]["actual"]["version"], 1, "{failed}");
    // A malformed one is refused before the writer sees it.
    writer.send(json!({"type": "client:transaction", "requestId": "tx-3", "writes": []})).await;
    let malformed = writer.recv_where("the refusal", |f| f["requestId"] == "tx-3").await;
    assert_eq!(malformed["code"], "invalid-transaction", "{malformed}");
    assert_eq!(head(&server, b, None).await, before, "no retry or refusal logged anything");
    assert!(change_frames(&mut compact, window).await.is_empty(), "nor sent anything");
}
