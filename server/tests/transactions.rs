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
    let tx = json!({"requestId": "t1", "reads": [{"table": "dining_tables", "id": "T-TX-1", "exists": false}],
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
