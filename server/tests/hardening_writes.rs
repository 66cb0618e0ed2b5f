//! Attacks on what a client may write and learn (#24): mutation ids reused across senders, the
//! demo rules, racing batches, branch-limited identities, deltas. Each test is an attack script's
//! equivalent on the real binary and fails without the defence it names.

mod common;

use std::time::Duration;

use common::attack::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_mutation_id_is_one_senders_and_a_reused_one_is_refused_never_acknowledged() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    write_json(&data.path().join("security/rules.json"), &rules());
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let admin = token(json!({"sub": "boss", "role": "admin"}));
    let alice = token(json!({"sub": "alice", "role": "cashier"}));
    let bob = token(json!({"sub": "bob", "role": "cashier"}));
    let orders = server.module_url(b, "/tables/order_header");
    let insert = |id: &str| json!({"record": order_header(Some(id)), "mutationId": "m1"});

    // Two identities that pick the same id each get their own write.
    let (status, first) = call(Method::POST, &orders, Some(&alice), None, insert("ORD-A")).await;
    assert_eq!(status, 201, "{first}");
    let (status, body) = call(Method::POST, &orders, Some(&bob), None, insert("ORD-B")).await;
    assert_eq!(status, 201, "{body}");
    assert!(stored(&server, b, "order_header", "ORD-B", Some(&admin)).await.is_some(), "bob's order vanished");

    // The same sender retrying the same write gets its first result, and nothing is written twice.
    let before = head(&server, b, Some(&admin)).await;
    let (status, again) = call(Method::POST, &orders, Some(&alice), None, insert("ORD-A")).await;
    assert!(status == 201 || status == 200, "{again}");
    assert_eq!(again["ack"]["sequence"], first["ack"]["sequence"], "{again}");
    assert_eq!(head(&server, b, Some(&admin)).await, before);

    // The same sender, the same id, another write: refused, and not stored.
    let (status, body) = call(Method::POST, &orders, Some(&alice), None, insert("ORD-C")).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("mutation-id-reused")), "{body}");
    assert!(stored(&server, b, "order_header", "ORD-C", Some(&admin)).await.is_none());
    assert_eq!(head(&server, b, Some(&admin)).await, before);

    // A cashier replaying an admin's id for a write its rules forbid is refused (the row exists,
    // which the cashier may read; the write is not its to make), never acknowledged.
    let tables = server.module_url(b, "/tables/dining_tables");
    let table = json!({"record": dining_table("T-ADM", "admin's"), "mutationId": "adm-1"});
    let (status, body) = call(Method::POST, &tables, Some(&admin), None, table.clone()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(Method::POST, &tables, Some(&alice), None, table).await;
    assert!(matches!(status, 403 | 409) && body["ack"].is_null(), "{status} {body}");
    let other = json!({"record": dining_table("T-NEW", "not allowed"), "mutationId": "adm-1"});
    let (status, body) = call(Method::POST, &tables, Some(&alice), None, other).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");

    // Over the WebSocket alike: bob's own "m1" is a new write there, acknowledged and stored.
    let mut ws = WsClient::connect(&format!("{}?token={bob}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": b})).await;
    ws.recv_type("server:snapshot").await;
    ws.send(publish("order_header", order_header(Some("ORD-WS")), "m1")).await;
    let reply = reply_to(&mut ws, "m1").await;
    assert_eq!(reply["type"], "server:error", "bob's m1 was the REST order, not this one: {reply}");
    assert_eq!(reply["code"], "mutation-id-reused", "{reply}");
    ws.send(publish("order_header", order_header(Some("ORD-WS")), "m2")).await;
    let reply = reply_to(&mut ws, "m2").await;
    assert_eq!(reply["type"], "server:ack", "{reply}");
    assert!(stored(&server, b, "order_header", "ORD-WS", Some(&admin)).await.is_some());
}

#[tokio::test]
async fn anonymous_clients_are_told_apart_by_their_client_id_and_a_replay_from_a_new_connection_is_recognised() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let hello = |client: &str| json!({"type": "client:hello", "branchId": b, "clientId": client});

    let mut one = WsClient::connect(&server.ws_url()).await;
    one.send(hello("till-1")).await;
    one.recv_type("server:snapshot").await;
    let mut two = WsClient::connect(&server.ws_url()).await;
    two.send(hello("till-2")).await;
    two.recv_type("server:snapshot").await;

    one.send(publish("dining_tables", dining_table("T-1", "one"), "m1")).await;
    let first = reply_to(&mut one, "m1").await;
    assert_eq!(first["type"], "server:ack", "{first}");
    two.send(publish("dining_tables", dining_table("T-2", "two"), "m1")).await;
    let reply = reply_to(&mut two, "m1").await;
    assert_eq!(reply["type"], "server:ack", "{reply}");
    assert!(stored(&server, b, "dining_tables", "T-2", None).await.is_some(), "till 2's write vanished after its ack");

    // Till 1 reconnects and replays its outbox: the first result again, nothing written twice.
    drop(one);
    let before = head(&server, b, None).await;
    let mut again = WsClient::connect(&server.ws_url()).await;
    again.send(hello("till-1")).await;
    again.recv_type("server:snapshot").await;
    again.send(publish("dining_tables", dining_table("T-1", "one"), "m1")).await;
    let replay = reply_to(&mut again, "m1").await;
    assert_eq!(replay["type"], "server:ack", "{replay}");
    assert_eq!(replay["sequence"], first["sequence"], "{replay}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(head(&server, b, None).await, before);

    // Without a client id an anonymous caller is known by its address: another write under an id
    // it used is refused.
    let tables = server.module_url(b, "/tables/dining_tables");
    let (status, _) =
        call(Method::POST, &tables, None, None, json!({"record": dining_table("T-3", "x"), "mutationId": "r1"})).await;
    assert_eq!(status, 201);
    let (status, body) =
        call(Method::POST, &tables, None, None, json!({"record": dining_table("T-4", "y"), "mutationId": "r1"})).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("mutation-id-reused")), "{body}");
    let (status, body) = call(
        Method::POST,
        &tables,
        None,
        Some("device-9"),
        json!({"record": dining_table("T-4", "y"), "mutationId": "r1"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn under_the_demo_rules_a_kitchen_moves_only_the_status_of_its_own_lines() {
    // The demo rules are written for the repo's own demo schema: this test serves that data.
    let dir = tempfile::tempdir().unwrap();
    mishkah_test_support::copy_dir(&mishkah_test_support::own_data_dir(), dir.path()).unwrap();
    std::fs::copy(dir.path().join("security/rules.demo.json"), dir.path().join("security/rules.json")).unwrap();
    let server = TestServer::start_with(dir.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let cashier = token(json!({"sub": "c1", "role": "cashier"}));
    let hot = token(json!({"sub": "k1", "role": "kitchen", "section": "hot"}));
    let url = |t: &str| server.module_url("demo", &format!("/tables/{t}"));
    let (status, body) =
        call(Method::POST, &url("order_header"), Some(&cashier), None, json!({"record": order_header(Some("O-K"))}))
            .await;
    assert_eq!(status, 201, "{body}");
    let line = json!({"id": "L-K", "orderId": "O-K", "itemId": "item-1", "kitchenSectionId": "hot", "status": "queued",
                      "quantity": 1, "unitPrice": 99, "total": 99});
    let (status, body) = call(Method::POST, &url("order_line"), Some(&cashier), None, json!({"record": line})).await;
    assert_eq!(status, 201, "{body}");

    let patch = |table: &'static str, record: Value| {
        let (u, hot) = (url(table), hot.clone());
        let mut record = record;
        record["version"] = json!(1);
        async move { call(Method::PATCH, &u, Some(&hot), None, json!({"record": record})).await }
    };
    for (table, record) in [
        ("order_line", json!({"id": "L-K", "status": "preparing", "unitPrice": 0})),
        ("order_line", json!({"id": "L-K", "total": 0})),
        ("order_line", json!({"id": "L-K", "orderId": "O-OTHER"})),
        ("order_header", json!({"id": "O-K", "stage": "preparing", "total": 999})),
        ("order_header", json!({"id": "O-K", "paidTotal": 1000})),
    ] {
        let (status, body) = patch(table, record.clone()).await;
        assert_eq!(status, 403, "a kitchen changed {record}: {body}");
    }
    let (status, body) = patch("order_line", json!({"id": "L-K", "status": "preparing"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch("order_header", json!({"id": "O-K", "stage": "preparing"})).await;
    assert_eq!(status, 200, "{body}");
    let (_, line) = call(Method::GET, &format!("{}/L-K", url("order_line")), Some(&cashier), None, Value::Null).await;
    let line = &line["record"];
    assert_eq!((line["status"].as_str(), line["unitPrice"].as_f64()), (Some("preparing"), Some(99.0)), "{line}");
}

#[tokio::test]
async fn batches_that_expect_the_same_last_event_cannot_both_pass() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let batch = server.module_url(b, "/events/batch");
    let (_, body) =
        post_json(&batch, json!({"events": [{"table": "dining_tables", "record": dining_table("T-0", "zero")}]})).await;
    let last = body["lastAckId"].clone();
    let attempts = (0..10).map(|i| {
        let (batch, last) = (batch.clone(), last.clone());
        let record = dining_table(&format!("T-race-{i}"), "race");
        tokio::spawn(async move {
            post_json(&batch, json!({"lastAckId": last, "events": [{"table": "dining_tables", "record": record}]}))
                .await
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        let (status, body) = attempt.await.unwrap();
        if status != 200 {
            assert_eq!(body["error"], "last-ack-mismatch", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn an_identity_limited_to_one_branch_learns_nothing_of_the_others() {
    let data = DataCopy::new();
    let (b, other) = (data.scenario.branch, data.scenario.other_branch);
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let mine = token(json!({"sub": "till-1", "role": "cashier", "branches": [b]}));
    let (_, list) = call(Method::GET, &server.url("/api/branches"), Some(&mine), None, Value::Null).await;
    let ids: Vec<&str> = list["branches"].as_array().unwrap().iter().filter_map(|b| b["id"].as_str()).collect();
    assert_eq!(ids, [b], "{list}");
    let url = server.url(&format!("/api/schema?branch={}", urlencode(other)));
    let (status, body) = call(Method::GET, &url, Some(&mine), None, Value::Null).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("branch-forbidden")), "{body}");
    let (_, state) = call(Method::GET, &server.url("/api/state"), Some(&mine), None, Value::Null).await;
    assert!(!state.to_string().contains(data.path().to_str().unwrap()), "the data directory's path: {state}");
    assert!(!state.to_string().contains(&format!("\"{other}\"")), "another branch: {state}");
}

#[tokio::test]
async fn a_rest_client_may_ask_for_a_minimal_write_answer() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(b, "/tables/dining_tables");
    let full = reqwest::Client::new()
        .post(&url)
        .json(&json!({"record": dining_table("T-full", "full")}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(&url)
        .header("prefer", "return=minimal")
        .json(&json!({"record": dining_table("T-min", "min")}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let minimal = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&minimal).unwrap();
    assert_eq!((body["status"].as_str(), body["key"]["id"].as_str()), (Some("created"), Some("T-min")), "{body}");
    assert!(
        body["sequence"].as_u64().is_some() && body["version"].as_i64().is_some() && body["record"]["name"] == "min"
    );
    assert!(minimal.len() * 4 < full.len(), "minimal {} bytes, full {} bytes", minimal.len(), full.len());
}

#[tokio::test]
async fn a_delta_names_no_row_the_caller_could_never_have_seen() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(
        &data.path().join("security/rules.json"),
        &json!({"modules": {"pos": {"tables": {
            "order_line": {"list": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
                           "view": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
                           "create": "@auth.role = \"cashier\"", "update": "@auth.role = \"cashier\"",
                           "delete": "@auth.role = \"cashier\""},
            "*": {"list": "", "view": "", "create": "", "update": "", "delete": ""}}}}}),
    );
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let cashier = token(json!({"sub": "c1", "role": "cashier"}));
    let hot = token(json!({"sub": "k1", "role": "kitchen", "section": "hot"}));
    let mut ws = WsClient::connect(&format!("{}?token={hot}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch})).await;
    let cursor = ws.recv_type("server:snapshot").await["modules"]["pos"]["version"].as_u64().unwrap();
    drop(ws);

    let lines = server.module_url(s.branch, "/tables/order_line");
    for (id, section) in [("L-secret-cold", "cold"), ("L-hot", "hot")] {
        let line = json!({"id": id, "orderId": "O-1", "itemId": "item-1", "kitchenSectionId": section,
                          s.line_status: "queued", "quantity": 1, "unitPrice": 9, "total": 9});
        let (status, body) = call(Method::POST, &lines, Some(&cashier), None, json!({"record": line})).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = call(Method::DELETE, &format!("{lines}?id={id}"), Some(&cashier), None, Value::Null).await;
        assert_eq!(status, 200, "{body}");
    }

    let mut ws = WsClient::connect(&format!("{}?token={hot}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": cursor})).await;
    let delta = ws.recv_type("server:delta").await;
    assert!(!delta.to_string().contains("L-secret-cold"), "the delta names a row the kitchen never saw: {delta}");
    let (_, rest) = call(
        Method::POST,
        &server.url(&format!("/api/sync/{}/pos/delta", urlencode(s.branch))),
        Some(&hot),
        None,
        json!({"version": cursor}),
    )
    .await;
    assert!(!rest.to_string().contains("L-secret-cold"), "the REST delta names it: {rest}");
}

#[tokio::test]
async fn a_row_hidden_before_the_cursor_stays_unnamed_when_it_changes_or_goes() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(
        &data.path().join("security/rules.json"),
        &json!({"modules": {"pos": {"tables": {
            "order_line": {"list": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
                           "view": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
                           "create": "@auth.role = \"cashier\"", "update": "@auth.role = \"cashier\"",
                           "delete": "@auth.role = \"cashier\""},
            "*": {"list": "", "view": "", "create": "", "update": "", "delete": ""}}}}}),
    );
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let cashier = token(json!({"sub": "c1", "role": "cashier"}));
    let hot = token(json!({"sub": "k1", "role": "kitchen", "section": "hot"}));
    let lines = server.module_url(s.branch, "/tables/order_line");
    let line = |id: &str, section: &str| {
        json!({"id": id, "orderId": "O-1", "itemId": "item-1", "kitchenSectionId": section,
               s.line_status: "queued", "quantity": 1, "unitPrice": 9, "total": 9})
    };
    for (id, section) in [("L-cold-changed", "cold"), ("L-cold-gone", "cold"), ("L-hot-gone", "hot")] {
        let (status, body) =
            call(Method::POST, &lines, Some(&cashier), None, json!({"record": line(id, section)})).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut ws = WsClient::connect(&format!("{}?token={hot}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch})).await;
    let cursor = ws.recv_type("server:snapshot").await["modules"]["pos"]["version"].as_u64().unwrap();
    let subscribe = |cursor: Option<u64>| json!({"type": "client:subscribe", "subId": "lines", "table": "order_line", "moduleId": "pos", "cursor": cursor});
    ws.send(subscribe(None)).await;
    let live_cursor = ws.recv_type("server:subscribed").await["cursor"].as_u64().unwrap();
    drop(ws);

    // While the kitchen is away: a cold line changes (still cold), two lines go.
    let mut changed = line("L-cold-changed", "cold");
    changed["quantity"] = json!(2);
    changed["version"] = json!(1);
    let (status, body) = call(Method::PATCH, &lines, Some(&cashier), None, json!({"record": changed})).await;
    assert_eq!(status, 200, "{body}");
    for id in ["L-cold-gone", "L-hot-gone"] {
        let (status, body) = call(Method::DELETE, &format!("{lines}?id={id}"), Some(&cashier), None, Value::Null).await;
        assert_eq!(status, 200, "{body}");
    }

    let hidden = |what: &str, body: &Value| {
        let text = body.to_string();
        for id in ["L-cold-changed", "L-cold-gone"] {
            assert!(!text.contains(id), "{what} names {id}, which the kitchen never saw: {body}");
        }
        assert!(text.contains("L-hot-gone"), "{what} must still remove the line the kitchen held: {body}");
    };
    let mut ws = WsClient::connect(&format!("{}?token={hot}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": cursor})).await;
    hidden("the WebSocket delta", &ws.recv_type("server:delta").await);
    ws.send(subscribe(Some(live_cursor))).await;
    let resumed = ws.recv_type("server:subscribed").await;
    assert_eq!(resumed["mode"], json!("changes"), "{resumed}");
    hidden("a live query's resume", &resumed);
    let (_, rest) = call(
        Method::POST,
        &server.url(&format!("/api/sync/{}/pos/delta", urlencode(s.branch))),
        Some(&hot),
        None,
        json!({"version": cursor}),
    )
    .await;
    hidden("the REST delta", &rest);
    let (status, events) = call(
        Method::GET,
        &server.module_url(s.branch, &format!("/events?after={cursor}")),
        Some(&hot),
        None,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{events}");
    hidden("the event log", &events);
}

/// A NUL (U+0000) where PostgreSQL keeps text — a mutation id, a record key, a text field — never
/// fails the writes it was batched with (PostgreSQL would refuse the whole commit): the mutation
/// id is refused, a text field is kept whole, a key is stored or refused alone; on both backends.
#[tokio::test]
async fn a_nul_in_a_write_fails_that_write_at_most_never_its_batch() {
    for data in [DataCopy::new(), DataCopy::on_postgres()] {
        let b = data.scenario.branch;
        let server = TestServer::start(data.path()).await;
        let mut ws = WsClient::connect(&server.ws_url()).await;
        ws.send(json!({"type": "client:hello", "branchId": b})).await;
        ws.recv_type("server:snapshot").await;
        // Sent without waiting, so that they are written in one batch.
        ws.send(publish("dining_tables", dining_table("T-NUL-1", "before"), "nul-1")).await;
        ws.send(publish("dining_tables", dining_table("T-NUL-2", "id"), "nul-2\u{0}")).await;
        ws.send(publish("dining_tables", dining_table("T-NUL-3", "a\u{0}b"), "nul-3")).await;
        ws.send(publish("dining_tables", dining_table("T-NUL\u{0}4", "key"), "nul-4")).await;
        ws.send(publish("dining_tables", dining_table("T-NUL-5", "after"), "nul-5")).await;

        // Replies come in order (and `reply_to` skips what it is not waiting for).
        let reply = reply_to(&mut ws, "nul-1").await;
        assert_eq!(reply["type"], "server:ack", "{reply}");
        let reply = reply_to(&mut ws, "nul-2\u{0}").await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("server:error"), Some("invalid-mutation-id"))
        );
        let reply = reply_to(&mut ws, "nul-3").await;
        assert_eq!(reply["type"], "server:ack", "{reply}");
        let reply = reply_to(&mut ws, "nul-4").await;
        assert!(
            reply["type"] == "server:ack" || reply["code"] == "not-supported",
            "a key with a NUL is stored (SQLite) or refused alone (PostgreSQL): {reply}"
        );
        let reply = reply_to(&mut ws, "nul-5").await;
        assert_eq!(reply["type"], "server:ack", "{reply}");
        for (id, name) in [("T-NUL-1", "before"), ("T-NUL-3", "a\u{0}b"), ("T-NUL-5", "after")] {
            let row = stored(&server, b, "dining_tables", id, None).await;
            assert_eq!(row.as_ref().map(|r| &r["record"]["name"]), Some(&json!(name)), "{id}: {row:?}");
        }
        assert!(stored(&server, b, "dining_tables", "T-NUL-2", None).await.is_none(), "a refused write is not stored");
        // The text stays findable by what it holds.
        let url = server.module_url(b, "/tables/dining_tables?filter=name%20~%20%22A%22");
        let (status, body) = call(Method::GET, &url, None, None, Value::Null).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.to_string().contains("T-NUL-3"), "{body}");
    }
}
