//! Webhooks (#26) against a receiver that fails a third of its requests and hangs on some, the
//! server SIGKILLed during delivery and started again: every matching event arrives (duplicates
//! only, dropped by `webhook-id`), in order, each signed by the Standard Webhooks specification
//! (checked with its own library); after its attempts an event is dead-lettered, and a replay
//! delivers it.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Default)]
struct Receiver {
    requests: AtomicUsize,
    /// Every accepted delivery, in arrival order: (webhook-id, body).
    accepted: Mutex<Vec<(String, Value)>>,
    bad_signatures: AtomicUsize,
    /// While set, `/dead` refuses everything.
    refusing: AtomicBool,
}

async fn flaky(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let n = r.requests.fetch_add(1, Ordering::SeqCst);
    if n % 3 == 1 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if n % 7 == 5 {
        // Longer than the server waits: it gives up on this attempt and tries again.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    accept(&r, &headers, &body)
}

async fn dead(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if r.refusing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    accept(&r, &headers, &body)
}

fn accept(r: &Receiver, headers: &HeaderMap, body: &[u8]) -> StatusCode {
    let verifier = standardwebhooks::Webhook::new(SECRET).expect("the secret");
    if verifier.verify(body, headers).is_err() {
        r.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    r.accepted.lock().unwrap().push((id, body));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/flaky", axum::routing::post(flaky))
        .route("/dead", axum::routing::post(dead))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, base)
}

/// First arrival of each event id, in arrival order, with its sequence.
fn distinct(r: &Receiver) -> Vec<(String, u64)> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for (id, body) in r.accepted.lock().unwrap().iter() {
        if seen.insert(id.clone(), ()).is_none() {
            out.push((id.clone(), body["sequence"].as_u64().unwrap_or(0)));
        }
    }
    out
}

async fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn started(data: &DataCopy) -> TestServer {
    TestServer::start_with(data.path(), &["--webhook-backoff-ms", "20", "--webhook-timeout-ms", "400"]).await
}

/// Waits until the webhook has its cursor on the branch (it delivers what is committed after).
async fn watching(server: &TestServer, branch: &str, id: &str) {
    let url = server.url("/api/webhooks");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = get_json(&url).await;
        let hook = list["webhooks"].as_array().and_then(|l| l.iter().find(|h| h["id"] == id).cloned());
        if hook.is_some_and(|h| h["cursors"].get(format!("{branch}/pos")).is_some()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "webhook {id} never started: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_event_arrives_signed_and_in_order_through_failures_hangs_and_a_kill() {
    let (r, base) = receiver().await;
    let data = DataCopy::new();
    let b = data.scenario.branch;
    write_json(
        &data.path().join("webhooks.json"),
        &json!([{"id": "tables", "url": format!("{base}/flaky"), "module": "pos", "tables": ["dining_tables"],
                 "secret": SECRET, "attempts": 30}]),
    );
    let mut server = started(&data).await;
    watching(&server, b, "tables").await;
    let url = server.module_url(b, "/tables/dining_tables");
    for i in 0..20 {
        let (status, _) = post_json(&url, json!({"record": dining_table(&format!("W-{i}"), "hook")})).await;
        assert_eq!(status, 201);
    }
    // Another table's writes are not this webhook's.
    let (status, _) =
        post_json(&server.module_url(b, "/tables/order_header"), json!({"record": order_header(None)})).await;
    assert_eq!(status, 201);
    wait_for("some deliveries", 30, || distinct(&r).len() >= 5).await;
    server.kill();
    let server = started(&data).await;
    let url = server.module_url(b, "/tables/dining_tables");
    for i in 20..30 {
        let (status, _) = post_json(&url, json!({"record": dining_table(&format!("W-{i}"), "hook")})).await;
        assert_eq!(status, 201);
    }
    wait_for("every event", 60, || distinct(&r).len() >= 30).await;

    let got = distinct(&r);
    assert_eq!(got.len(), 30, "each write once (after dropping duplicates by webhook-id)");
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "in order: {got:?}");
    assert_eq!(r.bad_signatures.load(Ordering::SeqCst), 0);
    let bodies = r.accepted.lock().unwrap().clone();
    assert!(bodies.iter().all(|(id, body)| body["eventId"] == id.as_str() && body["table"] == "dining_tables"));
    let first = &bodies[0].1;
    assert_eq!(
        (first["branch"].as_str(), first["module"].as_str(), first["action"].as_str()),
        (Some(b), Some("pos"), Some("insert"))
    );
    assert!(first["row"]["id"].as_str().is_some_and(|id| id.starts_with("W-")), "{first}");
    assert!(r.requests.load(Ordering::SeqCst) > 30, "the receiver failed some requests");
}

#[tokio::test]
async fn an_event_is_dead_lettered_after_its_attempts_and_a_replay_delivers_it() {
    let (r, base) = receiver().await;
    r.refusing.store(true, Ordering::SeqCst);
    let data = DataCopy::new();
    let b = data.scenario.branch;
    write_json(
        &data.path().join("webhooks.json"),
        &json!([{"id": "down", "url": format!("{base}/dead"), "module": "pos", "tables": ["dining_tables"],
                 "actions": ["insert"], "secret": SECRET, "attempts": 2}]),
    );
    let server = started(&data).await;
    watching(&server, b, "down").await;
    let (status, _) =
        post_json(&server.module_url(b, "/tables/dining_tables"), json!({"record": dining_table("D-1", "dead")})).await;
    assert_eq!(status, 201);
    let deliveries = server.url("/api/webhooks/down/deliveries");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let d = get_json(&deliveries).await;
        if d["deadLetters"].as_array().is_some_and(|l| !l.is_empty()) {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "never dead-lettered: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let letter = &dead["deadLetters"][0];
    assert_eq!((letter["attempts"].as_u64(), letter["lastError"].as_str()), (Some(2), Some("HTTP 500")), "{dead}");
    assert!(r.accepted.lock().unwrap().is_empty());

    // The receiver is back: a replay delivers what was given up on.
    r.refusing.store(false, Ordering::SeqCst);
    let (status, replayed) = post_json(&server.url("/api/webhooks/down/replay"), Value::Null).await;
    assert_eq!(status, 200, "{replayed}");
    wait_for("the replayed event", 20, || !r.accepted.lock().unwrap().is_empty()).await;
    assert_eq!(r.accepted.lock().unwrap()[0].0, letter["eventId"].as_str().unwrap_or_default());
    assert_eq!(get_json(&deliveries).await["deadLetters"], json!([]));
    let (status, missing) = get_status(&server.url("/api/webhooks/nope/deliveries")).await;
    assert_eq!((status, missing["error"].as_str()), (404, Some("webhook-not-found")));
}

#[tokio::test]
async fn compaction_keeps_what_a_webhook_has_not_delivered() {
    let (r, base) = receiver().await;
    let data = DataCopy::new();
    let b = data.scenario.branch;
    write_json(
        &data.path().join("webhooks.json"),
        &json!([{"id": "later", "url": format!("{base}/dead"), "module": "pos", "tables": ["dining_tables"], "secret": SECRET}]),
    );
    let server = started(&data).await;
    watching(&server, b, "later").await;
    let (status, _) = post_json(&server.url("/api/webhooks/later/pause"), Value::Null).await;
    assert_eq!(status, 200);
    for i in 0..5 {
        let url = server.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("K-{i}"), "kept")})).await.0, 201);
    }
    let head = get_json(&server.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    let (status, compacted) =
        post_json(&server.url("/api/manage/compact"), json!({"branchId": b, "moduleId": "pos", "through": head})).await;
    assert_eq!(status, 200, "{compacted}");
    assert!(
        compacted["through"].as_u64().is_some_and(|t| t <= head - 5),
        "kept the paused webhook's events: {compacted}"
    );
    let (status, _) = post_json(&server.url("/api/webhooks/later/resume"), Value::Null).await;
    assert_eq!(status, 200);
    wait_for("the events written while paused", 20, || distinct(&r).len() == 5).await;
}

#[tokio::test]
async fn with_several_nodes_each_event_is_delivered_once() {
    let database = mishkah_test_support::postgres::TestDatabase::new();
    let (r, base) = receiver().await;
    let hooks = json!([{"id": "shared", "url": format!("{base}/dead"), "module": "pos", "tables": ["dining_tables"], "secret": SECRET}]);
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let data = DataCopy::new();
        // Under MISHKAH_TEST_STORE=postgres a copy has a database of its own: these share one.
        let _ = std::fs::remove_file(data.path().join(".test-store"));
        write_json(&data.path().join("webhooks.json"), &hooks);
        let server = TestServer::start_with(
            data.path(),
            &["--store", database.url.as_str(), "--webhook-backoff-ms", "20", "--webhook-timeout-ms", "400"],
        )
        .await;
        nodes.push((data, server));
    }
    let b = nodes[0].0.scenario.branch;
    watching(&nodes[0].1, b, "shared").await;
    for i in 0..20 {
        let url = nodes[i % 2].1.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("N-{i}"), "node")})).await.0, 201);
    }
    wait_for("every event", 30, || distinct(&r).len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let accepted = r.accepted.lock().unwrap().len();
    assert_eq!((distinct(&r).len(), accepted), (20, 20), "each event once, by one node");
}

#[tokio::test]
async fn the_file_is_read_again_when_it_changes_and_a_bad_one_changes_nothing() {
    let (r, base) = receiver().await;
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = started(&data).await;
    assert_eq!(get_json(&server.url("/api/webhooks")).await["webhooks"], json!([]));
    let hook = json!({"id": "late", "url": format!("{base}/dead"), "module": "pos", "tables": ["dining_tables"], "secret": SECRET});
    write_json(&data.path().join("webhooks.json"), &json!([hook]));
    watching(&server, b, "late").await;
    // A file with a mistake is refused whole: the webhook running goes on.
    write_json(
        &data.path().join("webhooks.json"),
        &json!([hook, {"id": "bad", "url": "nowhere", "module": "pos", "secret": "x"}]),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let url = server.module_url(b, "/tables/dining_tables");
    assert_eq!(post_json(&url, json!({"record": dining_table("R-1", "reload")})).await.0, 201);
    wait_for("the delivery", 20, || distinct(&r).len() == 1).await;
    let listed = get_json(&server.url("/api/webhooks")).await;
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1), "{listed}");
    assert!(!listed.to_string().contains("whsec_"), "secrets are never shown: {listed}");
    assert!(server.log().contains("webhooks not reloaded"), "the bad file was reported");
    let metrics = reqwest::get(server.url("/metrics")).await.expect("metrics").text().await.unwrap_or_default();
    assert!(metrics.contains("mishkah_webhook_deliveries_total{webhook=\"late\"} 1"), "{metrics}");
}

/// A webhook that names no branches follows every branch, those created on demand after it
/// started too (a new till's `pos:` branch).
#[tokio::test]
async fn a_webhook_without_branches_follows_branches_created_on_demand() {
    let (r, base) = receiver().await;
    let data = DataCopy::new();
    write_json(
        &data.path().join("webhooks.json"),
        &json!([{"id": "every", "url": format!("{base}/dead"), "module": "pos", "tables": ["dining_tables"], "secret": SECRET}]),
    );
    let server = started(&data).await;
    // The webhook has started: the branches that existed then have their cursors.
    watching(&server, data.scenario.branch, "every").await;
    let fresh = "pos:till-9";
    let url = server.module_url(fresh, "/tables/dining_tables");
    // The new branch's very first write (the one that creates it) is delivered too.
    assert_eq!(post_json(&url, json!({"record": dining_table("D-1", "first")})).await.0, 201);
    assert_eq!(post_json(&url, json!({"record": dining_table("D-2", "second")})).await.0, 201);
    wait_for("the new branch's writes", 20, || {
        r.accepted.lock().unwrap().iter().any(|(_, body)| body["branch"] == fresh && body["row"]["id"] == "D-2")
    })
    .await;
    let delivered: Vec<Value> = r
        .accepted
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["branch"] == fresh)
        .map(|(_, body)| body["row"]["id"].clone())
        .collect();
    assert_eq!(delivered, [json!("D-1"), json!("D-2")], "both, in order, once each");
}
