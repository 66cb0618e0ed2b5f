//! The wire, end to end: two WebSocket clients and REST against the real binary.

mod common;

use std::time::Duration;

use common::{dining_table, get_json, get_status, order_header, post_json, send_json, DataCopy, TestServer, WsClient};
use serde_json::{json, Value};

fn publish(table: &str, action: &str, record: Value, request_id: &str) -> Value {
    json!({"type": "client:publish", "moduleId": "pos", "table": table, "action": action, "record": record, "requestId": request_id, "includeRecord": true})
}

/// Invalid in both the real and the demo schema, in at least two fields of each.
fn bad_order(id: &str) -> Value {
    json!({"id": id, "posNumber": "x", "openedAt": "never", "total": "x", "sentAt": "never"})
}

#[tokio::test]
async fn hello_snapshot_publish_ack_and_event_flow_between_two_clients() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut a, snapshot) = WsClient::hello(&server.ws_url(), s.branch).await;
    let (mut b, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let menu = snapshot["modules"]["pos"]["tables"]["menu_items"].as_array().unwrap();
    assert_eq!(menu.len(), s.menu_items);
    assert!(snapshot["modules"]["pos"]["version"].as_u64().unwrap() > 0);

    a.send(publish("dining_tables", "module:insert", dining_table("T-flow", "Window"), "req-1")).await;
    let ack = a.recv_type("server:ack").await;
    assert_eq!(ack["requestId"], "req-1");
    assert_eq!(ack["action"], "module:insert");
    assert_eq!(ack["recordRef"]["id"], "T-flow");
    assert_eq!(ack["entry"]["record"]["name"], "Window", "includeRecord puts the row in the ack");
    let seq = ack["sequence"].as_u64().unwrap();
    for client in [&mut a, &mut b] {
        let event = client.recv_where("event", |f| f["type"] == "server:event" && f["sequence"] == json!(seq)).await;
        assert_eq!(event["notice"]["recordRef"]["id"], "T-flow");
        assert_eq!(event["entry"]["record"]["version"], json!(1));
    }
    // Old clients' module:update is a partial update of an existing row.
    b.send(publish("dining_tables", "module:update", json!({"id": "T-flow", "name": "Door"}), "req-2")).await;
    let ack = b.recv_type("server:ack").await;
    assert_eq!(
        (ack["requestId"].clone(), ack["action"].clone(), ack["recordVersion"].clone()),
        (json!("req-2"), json!("module:merge"), json!(2))
    );
    let event = a.recv_where("update event", |f| f["type"] == "server:event" && f["sequence"] == json!(seq + 1)).await;
    assert_eq!(event["entry"]["record"]["name"], "Door");
}

#[tokio::test]
async fn a_rest_write_reaches_ws_clients_of_its_branch_only() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut same, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let (mut other, other_snapshot) = WsClient::hello(&server.ws_url(), s.other_branch).await;
    // Events at or below the snapshot's version are already in it (a module opened by this very
    // hello may still be publishing its seed); only later ones are news.
    let seen = other_snapshot["modules"]["pos"]["version"].as_u64().unwrap();
    let r = reqwest::Client::new()
        .post(server.module_url(s.branch, "/tables/dining_tables"))
        .json(&json!({"record": dining_table("T-rest", "Bar")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let event = same.recv_where("event", |f| f["type"] == "server:event").await;
    assert_eq!(event["recordRef"]["id"], "T-rest");
    assert_eq!(event["meta"]["source"], "rest");
    let leaked: Vec<_> = other
        .drain(Duration::from_millis(400))
        .await
        .into_iter()
        .filter(|f| f["type"] == "server:event" && f["sequence"].as_u64() > Some(seen))
        .map(|f| f["recordRef"].clone())
        .collect();
    assert!(leaked.is_empty(), "another branch received {leaked:?}");
}

#[tokio::test]
async fn a_stale_version_gets_a_structured_conflict_frame_on_ws() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut c, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    c.send(publish("order_header", "module:insert", order_header(Some("o-ws")), "r1")).await;
    assert_eq!(
        c.recv_where("ack", |f| f["type"] == "server:ack" || f["type"] == "server:error").await["type"],
        "server:ack"
    );
    let mut merge = publish("order_header", "module:merge", json!({"id": "o-ws", "guests": 2}), "r2");
    merge["expectedVersion"] = json!(1);
    c.send(merge.clone()).await;
    assert_eq!(c.recv_where("ack", |f| f["requestId"] == "r2").await["type"], "server:ack");
    merge["requestId"] = json!("r3");
    merge["mutationId"] = json!("m3");
    c.send(merge).await;
    let err = c.recv_where("error", |f| f["type"] == "server:error").await;
    assert_eq!(
        (err["code"].clone(), err["requestId"].clone(), err["mutationId"].clone()),
        (json!("version-conflict"), json!("r3"), json!("m3"))
    );
    assert_eq!(
        (err["details"]["expectedVersion"].clone(), err["details"]["currentVersion"].clone()),
        (json!(1), json!(2))
    );
    let log = c.recv_where("log", |f| f["type"] == "server:log" && f["level"] == "error").await;
    assert_eq!(log["context"]["requestId"], "r3", "old clients still get the log line");
}

#[tokio::test]
async fn delta_from_a_cursor_returns_exactly_the_rows_changed_since_deletes_included() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    for id in ["T-d1", "T-d2", "T-d3"] {
        http.post(&tables).json(&json!({"record": dining_table(id, "before")})).send().await.unwrap();
    }
    let delta_url = server.url(&format!("/api/sync/{}/pos/delta", common::urlencode(s.branch)));
    let cursor =
        http.post(&delta_url).json(&json!({"version": 0})).send().await.unwrap().json::<Value>().await.unwrap()
            ["version"]
            .as_u64()
            .unwrap();
    http.patch(&tables).json(&json!({"record": {"id": "T-d1", "name": "after"}})).send().await.unwrap();
    let del = http.delete(format!("{tables}?id=T-d2")).send().await.unwrap();
    assert_eq!(del.status().as_u16(), 200);
    http.post(&tables).json(&json!({"record": dining_table("T-d4", "new")})).send().await.unwrap();

    let delta: Value = post_json(&delta_url, json!({"version": cursor})).await.1;
    assert_eq!(delta["requiresFullSync"], json!(false));
    let rows = delta["deltas"]["dining_tables"].as_array().unwrap();
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["T-d1", "T-d4"]);
    assert_eq!(delta["deletions"]["dining_tables"], json!(["T-d2"]));
    assert_eq!(delta["deltas"].as_object().unwrap().len(), 1, "nothing else changed: {delta}");
    assert_eq!(delta["version"].as_u64().unwrap(), cursor + 3);

    // A cursor from the future (another database) is told to resync.
    let stale: Value = post_json(&delta_url, json!({"version": cursor + 1000})).await.1;
    assert_eq!(stale["requiresFullSync"], json!(true));

    // The same delta over WebSocket: hello with a cursor.
    let mut c = WsClient::connect(&server.ws_url()).await;
    c.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": {"pos": cursor}})).await;
    let frame = c.recv_type("server:delta").await;
    assert_eq!(frame["deleted"]["dining_tables"], json!(["T-d2"]));
    assert_eq!(frame["tables"]["dining_tables"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_leaves_connection_and_data_intact() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    // Strict validation: values that break their fields refuse the write (the default stores them as sent).
    let server = TestServer::start_with(data.path(), &["--validation", "strict"]).await;
    let (mut c, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed-frame"),
        (json!({"type": "client:teleport", "requestId": "x1"}).to_string(), "unknown-frame-type"),
        (publish("no_such_table", "module:insert", json!({"id": "1"}), "x2").to_string(), "table-not-found"),
        (publish("dining_tables", "module:explode", json!({"id": "1"}), "x3").to_string(), "unknown-action"),
        (json!({"type": "client:publish", "table": "dining_tables"}).to_string(), "invalid-frame"),
        (publish("dining_tables", "module:merge", json!({"id": "nope"}), "x4").to_string(), "not-found"),
        (publish("order_header", "module:insert", bad_order("o-bad"), "x5").to_string(), "validation-failed"),
    ];
    for (frame, code) in &cases {
        c.send_text(frame).await;
        let err = c.recv_type("server:error").await;
        assert_eq!(err["code"], *code, "for {frame}: {err}");
    }
    let mut v = WsClient::connect(&server.ws_url()).await;
    v.send(json!({"type": "client:hello", "branchId": "../../etc"})).await;
    assert_eq!(v.recv_type("server:error").await["code"], "invalid-branch");
    let validation = {
        c.send(publish("order_header", "module:insert", bad_order("o-bad2"), "x6")).await;
        c.recv_type("server:error").await
    };
    assert!(validation["details"]["errors"].as_array().unwrap().len() >= 2, "all problems at once: {validation}");

    // A large (but allowed) frame is read in pieces by the small per-connection buffer.
    c.send(publish(
        "dining_tables",
        "module:insert",
        json!({"id": "T-big", "name": "big", "note": "x".repeat(200_000)}),
        "x-big",
    ))
    .await;
    assert_eq!(c.recv_where("big ack", |f| f["requestId"] == "x-big").await["type"], "server:ack");

    // The connection still works.
    c.send(json!({"type": "ping"})).await;
    c.recv_type("pong").await;
    c.send(publish("dining_tables", "module:insert", dining_table("T-after", "ok"), "x7")).await;
    assert_eq!(c.recv_where("ack", |f| f["requestId"] == "x7").await["type"], "server:ack");

    // REST: malformed JSON, unknown table, oversized body, invalid branch.
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    let r = http.post(&tables).header("content-type", "application/json").body("{oops").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid-json");
    let r = http
        .post(server.module_url(s.branch, "/tables/nope"))
        .json(&json!({"record": {"id": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "table-not-found");
    let huge = json!({"record": {"id": "T-huge", "name": "x".repeat(3 * 1024 * 1024)}});
    let r = http.post(&tables).json(&huge).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "payload-too-large");
    // The server closes a connection whose oversized body it did not read: use a fresh one.
    let http = reqwest::Client::new();
    let r = http.get(server.url("/api/branches/bad%20branch/modules/pos")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid-branch");

    // Nothing was lost or half-written.
    let rows = get_json(&format!("{tables}?limit=10000")).await;
    let ids: Vec<&str> = rows["rows"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(ids.contains(&"T-after") && !ids.contains(&"T-huge") && !ids.contains(&"nope"));
    let menu = get_json(&server.module_url(s.branch, "/tables/menu_items?limit=1000")).await;
    assert_eq!(menu["count"], json!(s.menu_items));
}

#[tokio::test]
async fn health_metrics_static_files_and_catalog_routes_answer() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let static_dir = tempfile::tempdir().unwrap();
    std::fs::write(static_dir.path().join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::create_dir(static_dir.path().join("pkg")).unwrap();
    std::fs::write(static_dir.path().join("pkg/app.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let server = TestServer::start_with(data.path(), &["--static", static_dir.path().to_str().unwrap()]).await;
    assert_eq!(get_json(&server.url("/healthz")).await["status"], "ok");
    assert_eq!(get_json(&server.url("/readyz")).await["ready"], true, "SQLite files are always within reach");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mishkah_writes_total") && metrics.contains("mishkah_commit_seconds_bucket"), "{metrics}");
    for path in ["/pkg/app.wasm", "/static/pkg/app.wasm"] {
        let wasm = reqwest::get(server.url(path)).await.unwrap();
        assert_eq!(wasm.headers()["content-type"], "application/wasm", "{path}");
    }
    assert_eq!(reqwest::get(server.url("/")).await.unwrap().text().await.unwrap(), "<h1>hi</h1>");
    assert_eq!(reqwest::get(server.url("/missing.js")).await.unwrap().status().as_u16(), 404);
    assert_eq!(reqwest::get(server.url("/../Cargo.toml")).await.unwrap().status().as_u16(), 404);
    let branches = get_json(&server.url("/api/branches")).await;
    assert!(branches["branches"].as_array().unwrap().iter().any(|b| b["id"] == s.branch));
    let snapshot = get_json(&server.module_url(s.branch, "")).await;
    assert_eq!(snapshot["tables"]["menu_items"].as_array().unwrap().len(), s.menu_items);
    let seq: Value = reqwest::Client::new()
        .post(server.module_url(s.branch, "/sequences"))
        .json(&json!({"table": "order_header", "field": "id"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // As the original: `id` is the formatted number, `value` the counter.
    assert_eq!(seq["id"], json!(s.first_order_id));
    assert_eq!(seq["value"], json!(s.first_order_id.rsplit('-').next().unwrap().parse::<i64>().unwrap()));
}

#[tokio::test]
async fn a_whole_state_publish_on_a_sync_topic_goes_through_the_write_path_once() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut watcher, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let mut legacy = WsClient::connect(&server.ws_url()).await;
    let topic = format!("sync:{}::pos", s.branch);
    legacy.send(json!({"type": "subscribe", "topic": topic})).await;
    assert_eq!(legacy.recv_type("ack").await["event"], "subscribe");
    let state = legacy.recv_type("publish").await;
    let mut rows = state["data"]["tables"]["dining_tables"].as_array().unwrap().clone();
    assert!(rows.len() >= 2);
    let (changed, removed) = (rows[0]["id"].clone(), rows[1]["id"].clone());
    rows[0]["seats"] = json!(11);
    rows.remove(1);
    rows.push(dining_table("T-topic", "new"));
    let publish =
        json!({"type": "publish", "topic": topic, "data": {"trans_id": "trans-1", "tables": {"dining_tables": rows}}});
    legacy.send(publish.clone()).await;
    assert_eq!(legacy.recv_type("ack").await["event"], "publish");
    let event = watcher.recv_where("event", |f| f["type"] == "server:event" && f["recordRef"]["id"] == "T-topic").await;
    assert_eq!(event["meta"]["source"], "topic");
    // The topic subscriber hears writes from any path too (the original missed some).
    reqwest::Client::new()
        .post(server.module_url(s.branch, "/tables/dining_tables"))
        .json(&json!({"record": dining_table("T-via-rest", "x")}))
        .send()
        .await
        .unwrap();
    legacy
        .recv_where("REST write as event", |f| f["type"] == "server:event" && f["recordRef"]["id"] == "T-via-rest")
        .await;

    let tables = server.module_url(s.branch, "/tables/dining_tables?limit=1000");
    let after = get_json(&tables).await;
    let find = |id: &Value| after["rows"].as_array().unwrap().iter().find(|r| &r["id"] == id).cloned();
    assert_eq!(find(&changed).unwrap()["seats"], json!(11));
    assert!(find(&removed).is_none(), "rows missing from the published state are deleted");
    assert!(find(&json!("T-topic")).is_some());

    // The same trans_id again changes nothing.
    let head = get_json(&server.module_url(s.branch, "/events?limit=1")).await["lastSequence"].clone();
    legacy.send(publish).await;
    assert_eq!(legacy.recv_type("ack").await["event"], "publish");
    assert_eq!(get_json(&server.module_url(s.branch, "/events?limit=1")).await["lastSequence"], head);

    legacy.send(json!({"type": "publish", "topic": topic, "data": {"tables": {}}})).await;
    assert_eq!(legacy.recv_type("error").await["code"], "missing-trans-id");
    legacy.send(json!({"type": "publish", "topic": "chat", "data": {"trans_id": "x"}})).await;
    assert_eq!(legacy.recv_type("error").await["code"], "invalid-topic");
}

#[tokio::test]
async fn pipelined_publishes_each_get_their_ack_before_their_event_and_every_event_once() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (mut publisher, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let (mut watcher, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    const WRITES: usize = 300;
    // Sent without waiting, so events queue up and leave in batches.
    for i in 0..WRITES {
        let id = format!("T-pipe-{i}");
        publisher.send(publish("dining_tables", "module:insert", dining_table(&id, "n"), &id)).await;
    }
    let mut acked = std::collections::HashMap::new();
    let mut events = Vec::new();
    while events.len() < WRITES {
        let f = publisher.next(std::time::Duration::from_secs(10)).await.expect("every ack and event arrives");
        match f["type"].as_str() {
            Some("server:ack") => {
                acked.insert(f["sequence"].as_u64().unwrap(), f["requestId"].as_str().unwrap().to_owned());
            }
            Some("server:event") if f["recordRef"]["key"].as_str().is_some_and(|k| k.starts_with("T-pipe-")) => {
                let seq = f["sequence"].as_u64().unwrap();
                assert!(acked.contains_key(&seq), "the event of sequence {seq} came before its ack");
                events.push(seq);
            }
            _ => {}
        }
    }
    assert_eq!(acked.len(), WRITES);
    let mut seen = events.clone();
    seen.dedup();
    assert_eq!(seen.len(), WRITES, "every event once");
    assert!(events.windows(2).all(|w| w[0] < w[1]), "events in commit order");
    let mut watched = Vec::new();
    while watched.len() < WRITES {
        let f = watcher.next(std::time::Duration::from_secs(10)).await.expect("the watcher gets every event");
        if f["type"] == "server:event" && f["recordRef"]["key"].as_str().is_some_and(|k| k.starts_with("T-pipe-")) {
            watched.push(f["sequence"].as_u64().unwrap());
        }
    }
    assert_eq!(watched, events, "another client gets the same events in the same order");
}

#[tokio::test]
async fn one_row_is_read_and_deleted_at_its_own_address() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (status, _) = post_json(
        &server.module_url(s.branch, "/tables/dining_tables"),
        json!({"record": dining_table("T-one", "one")}),
    )
    .await;
    assert_eq!(status, 201);
    let row = server.module_url(s.branch, "/tables/dining_tables/T-one");
    let (status, got) = get_status(&row).await;
    assert_eq!((status, got["record"]["name"].as_str()), (200, Some("one")), "{got}");
    let (status, deleted) = send_json(reqwest::Method::DELETE, &row, Value::Null).await;
    assert_eq!((status, deleted["status"].as_str()), (200, Some("deleted")), "{deleted}");
    let (status, gone) = get_status(&row).await;
    assert_eq!((status, gone["error"].as_str()), (404, Some("not-found")), "{gone}");
    // The table's other routes keep their names.
    assert_eq!(get_status(&server.module_url(s.branch, "/tables/dining_tables/count")).await.0, 200);
}
