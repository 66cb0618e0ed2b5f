//! `mishkah migrate` copies a data directory's SQLite modules into PostgreSQL and `mishkah verify`
//! compares the two: on the shared fixtures (or the repo's data), after writes, purges and
//! compaction; a server on the copy serves the same rows and resumes a client's cursor.

mod common;

use std::process::Command;

use common::{dining_table, get_json, post_json, DataCopy, TestServer, WsClient};
use mishkah_test_support::postgres::TestDatabase;
use serde_json::json;

fn mishkah(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah")).args(args).output().expect("run mishkah");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn a_migrated_store_verifies_equal_and_serves_what_the_original_served() {
    if std::env::var("MISHKAH_TEST_STORE").is_ok() {
        return; // The data copy's servers already keep their rows in PostgreSQL.
    }
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let mut server = TestServer::start(data.path()).await;
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    for i in 0..20 {
        let (status, body) =
            post_json(&tables, json!({"record": dining_table(&format!("M-{i:02}"), "migrated")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, snapshot) = WsClient::hello(&server.ws_url(), s.branch).await;
    let cursor = snapshot["modules"]["pos"]["version"].as_u64().expect("a version") - 5;
    let before = get_json(&format!("{tables}?limit=1000")).await;
    let events = get_json(&server.module_url(s.branch, "/events?limit=5000")).await;
    server.kill();

    let database = TestDatabase::new();
    let dir = data.path().to_str().expect("a path");
    let (ok, out) = mishkah(&["migrate", "--data", dir, "--to", &database.url]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{}/pos:", s.branch)), "progress per module: {out}");
    let (ok, out) = mishkah(&["verify", "--data", dir, "--against", &database.url]);
    assert!(ok, "the copy verifies equal: {out}");
    let (ok, out) = mishkah(&["migrate", "--data", dir, "--to", &database.url]);
    assert!(!ok && out.contains("already holds data"), "a second copy is refused: {out}");

    // A changed row is a difference.
    let url = database.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        let schemas = client.query("SELECT id FROM mishkah.modules", &[]).expect("modules");
        let id: i64 = schemas[0].get(0);
        let sql = format!("UPDATE m{id}.mishkah_counters SET last = last + 1");
        client.batch_execute(&sql).expect("tamper");
    })
    .await
    .expect("tamper");
    let (ok, out) = mishkah(&["verify", "--data", dir, "--against", &database.url]);
    assert!(!ok && out.contains("differs"), "{out}");

    let server = TestServer::start_with(data.path(), &["--store", &database.url]).await;
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    assert_eq!(get_json(&format!("{tables}?limit=1000")).await["rows"], before["rows"], "the same rows");
    let copied = get_json(&server.module_url(s.branch, "/events?limit=5000")).await;
    assert_eq!(copied["events"], events["events"], "the same log");
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": cursor})).await;
    let delta = ws.recv_type("server:delta").await;
    let ids: Vec<&str> =
        delta["tables"]["dining_tables"].as_array().expect("rows").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["M-15", "M-16", "M-17", "M-18", "M-19"], "a client resumes from its cursor: {delta}");
}
