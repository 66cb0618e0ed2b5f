//! Compact frames (`client:hello {frames: "compact"}`) beside the original's: a compact client and
//! an original-shape client on one branch both receive every change exactly once, in commit
//! order; changes queued together share a `server:events` frame, which never cuts a transaction
//! (a batch of 100 arrives in one frame, past the per-write cap of 64).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Every change sequence a client received within `window`, in order, with the frames they came in.
async fn sequences(ws: &mut WsClient, window: Duration) -> (Vec<u64>, Vec<Vec<u64>>, Vec<Value>) {
    let (mut all, mut frames, mut changes) = (Vec::new(), Vec::new(), Vec::new());
    for f in ws.drain(window).await {
        match f["type"].as_str() {
            Some("server:event") => {
                all.push(f["sequence"].as_u64().unwrap());
                frames.push(vec![f["sequence"].as_u64().unwrap()]);
            }
            Some("server:events") => {
                let seqs: Vec<u64> =
                    f["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
                all.extend(&seqs);
                frames.push(seqs);
                changes.extend(f["events"].as_array().unwrap().iter().cloned());
            }
            _ => {}
        }
    }
    (all, frames, changes)
}

#[tokio::test]
async fn compact_and_original_clients_get_every_change_once_in_order_and_batches_stay_whole() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(&data.path().join("security/secret_fields.json"), &json!({"secretFields": {"dining_tables": ["note"]}}));
    let server = TestServer::start(data.path()).await;
    let mut compact = WsClient::connect(&server.ws_url()).await;
    compact
        .send(json!({"type": "client:hello", "branchId": s.branch, "frames": "compact", "requestSnapshot": false}))
        .await;
    compact.recv_type("server:log").await;
    let mut original = WsClient::connect(&server.ws_url()).await;
    original.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
    original.recv_type("server:log").await;
    let mut writer = WsClient::connect(&server.ws_url()).await;
    writer.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
    writer.recv_type("server:log").await;

    // A burst of pipelined writes (queued together), a batch of 100 in one transaction, a delete.
    for i in 0..150 {
        writer
            .send(
                json!({"type": "client:publish", "moduleId": "pos", "table": "dining_tables", "action": "module:insert",
                         "record": {"id": format!("C-{i}"), "name": "c", "seats": 2, "note": "secret"},
                         "requestId": format!("w{i}")}),
            )
            .await;
    }
    let events: Vec<Value> =
        (0..100).map(|i| json!({"table": "dining_tables", "record": dining_table(&format!("B-{i}"), "b")})).collect();
    let (status, batch) = post_json(&server.module_url(s.branch, "/events/batch"), json!({"events": events})).await;
    assert_eq!(status, 200, "{batch}");
    let batch_seqs: Vec<u64> =
        batch["sequences"].as_array().unwrap().iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    let url = server.module_url(s.branch, "/tables/dining_tables?id=C-0");
    let (status, _) = send_json(reqwest::Method::DELETE, &url, Value::Null).await;
    assert_eq!(status, 200);

    let window = Duration::from_millis(1500);
    let (from_original, _, _) = sequences(&mut original, window).await;
    let (from_compact, frames, changes) = sequences(&mut compact, Duration::from_millis(200)).await;
    assert_eq!(from_original.len(), 251, "150 writes, 100 in the batch, a delete");
    assert!(from_original.windows(2).all(|w| w[0] < w[1]), "commit order, no duplicate");
    assert_eq!(from_compact, from_original, "the compact client got exactly the same changes");
    assert!(frames.len() < from_compact.len(), "changes queued together shared frames: {} frames", frames.len());
    let holding = frames.iter().find(|f| f.contains(&batch_seqs[0])).unwrap();
    assert!(batch_seqs.iter().all(|s| holding.contains(s)), "the batch's 100 changes arrived in one frame");

    // What a compact change carries: the change once, hidden fields stripped, the writer's requestId.
    let first = changes.iter().find(|c| c["key"] == "C-1").unwrap();
    assert_eq!(
        (first["op"].as_str(), first["table"].as_str(), first["module"].as_str()),
        (Some("insert"), Some("dining_tables"), Some("pos"))
    );
    assert_eq!(
        (first["row"]["name"].as_str(), first["version"].as_i64(), first["requestId"].as_str()),
        (Some("c"), Some(1), Some("w1"))
    );
    assert!(first["row"].get("note").is_none(), "hidden fields never leave: {first}");
    let gone = changes.iter().find(|c| c["key"] == "C-0" && c["op"] == "delete").unwrap();
    assert!(gone.get("row").is_none());
    let compact_bytes = serde_json::to_string(first).unwrap().len();
    let mut one = WsClient::connect(&server.ws_url()).await;
    one.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
    one.recv_type("server:log").await;
    post_json(&server.module_url(s.branch, "/tables/dining_tables"), json!({"record": dining_table("C-size", "c")}))
        .await;
    let full = one.recv_type("server:event").await;
    let full_bytes = serde_json::to_string(&full).unwrap().len();
    assert!(compact_bytes * 4 < full_bytes, "compact {compact_bytes} bytes vs {full_bytes}");
}
