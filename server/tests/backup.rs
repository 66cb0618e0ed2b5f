//! `mishkah backup` while writes stream in, then `mishkah restore` into a new data directory: the
//! restored server holds exactly the writes acknowledged up to the backup's head — none after,
//! none missing — and goes on from there; a damaged backup is refused.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};

fn cli(args: &[&str], paths: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mishkah"));
    command.args(args);
    for (flag, path) in paths {
        command.arg(flag).arg(path);
    }
    command.env_remove("MISHKAH_STORE").env_remove("MISHKAH_DATA").output().expect("run mishkah")
}

#[tokio::test]
async fn a_backup_taken_while_writing_restores_exactly_what_was_acknowledged_by_its_head() {
    backup_while_writing(DataCopy::new()).await;
}

/// PostgreSQL has no online copy of its own files: a backup exports each module as of one commit
/// of its database into the embedded store's files, restored the same way.
#[tokio::test]
async fn a_postgres_store_backed_up_while_writing_restores_into_sqlite_files() {
    backup_while_writing(DataCopy::on_postgres()).await;
}

async fn backup_while_writing(data: DataCopy) {
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let (mut ws, _) = WsClient::hello(&server.ws_url(), b).await;
    let publish = |i: usize| {
        json!({"type": "client:publish", "moduleId": "pos", "table": "dining_tables", "action": "module:insert",
               "record": dining_table(&format!("B-{i}"), "backup"), "requestId": format!("B-{i}")})
    };
    for i in 0..300 {
        ws.send(publish(i)).await;
    }
    let target = tempfile::tempdir().expect("a target");
    let (data_dir, target_dir) = (data.path().to_path_buf(), target.path().to_path_buf());
    let backup = std::thread::spawn(move || {
        let store: Vec<String> = store_args(&data_dir);
        let store: Vec<&str> = store.iter().map(String::as_str).collect();
        cli(&[&["backup"], &store[..]].concat(), &[("--data", &data_dir), ("--to", &target_dir)])
    });
    for i in 300..600 {
        ws.send(publish(i)).await;
    }
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    while acked.len() < 600 {
        let f = ws.recv_where("an ack", |f| f["type"] == "server:ack" || f["type"] == "server:error").await;
        assert_eq!(f["type"], "server:ack", "{f}");
        acked.insert(
            f["sequence"].as_u64().expect("a sequence"),
            f["requestId"].as_str().unwrap_or_default().to_owned(),
        );
    }
    let out = backup.join().expect("the backup ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let snapshot = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(snapshot.join("manifest.json")).unwrap()).unwrap();
    let pos =
        manifest["modules"].as_array().unwrap().iter().find(|m| m["branch"] == b && m["module"] == "pos").cloned();
    let head = pos.expect("the branch's pos module was backed up")["head"].as_u64().expect("a head");

    let restored = tempfile::tempdir().expect("a new data directory");
    let new_dir = restored.path().join("data");
    let out = cli(&["restore"], &[("--from", target.path()), ("--data", &new_dir)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A restore is a data directory of SQLite files, whatever the store backed up.
    let _ = std::fs::remove_file(new_dir.join(".test-store"));
    let again = TestServer::start(&new_dir).await;
    let events = get_json(&again.module_url(b, "/events?limit=1")).await;
    assert_eq!(events["lastSequence"].as_u64(), Some(head), "{events}");
    let rows = get_json(&again.module_url(b, "/tables/dining_tables?limit=10000")).await;
    let held: std::collections::BTreeSet<String> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str().filter(|id| id.starts_with("B-")).map(str::to_owned))
        .collect();
    let expected: std::collections::BTreeSet<String> =
        acked.iter().filter(|(seq, _)| **seq <= head).map(|(_, id)| id.clone()).collect();
    assert_eq!(held, expected, "exactly the writes acknowledged through the backup's head");
    // The restored module goes on from its head.
    let (status, body) =
        post_json(&again.module_url(b, "/tables/dining_tables"), json!({"record": dining_table("B-after", "x")})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(get_json(&again.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64(), Some(head + 1));

    // One flipped byte in the backup, and it is refused before anything is written.
    let file = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with("mishkah.sqlite3")))
        .cloned();
    let damaged = snapshot.join("data").join(file.expect("a module store")["path"].as_str().unwrap());
    let mut bytes = std::fs::read(&damaged).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    let elsewhere = restored.path().join("again");
    let out = cli(&["restore"], &[("--from", target.path()), ("--data", &elsewhere)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!elsewhere.exists(), "nothing restored from a damaged backup");
}

#[tokio::test]
async fn verify_finds_a_row_changed_behind_the_write_path() {
    let data = DataCopy::new();
    if data.path().join(".test-store").exists() {
        eprintln!("skipped: this test changes a SQLite file by hand");
        return;
    }
    let b = data.scenario.branch;
    let mut server = TestServer::start(data.path()).await;
    for i in 0..3 {
        let url = server.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("V-{i}"), "kept")})).await.0, 201);
    }
    let _ = server.stop();
    let verify = || cli(&["verify"], &[("--data", data.path())]);
    let out = verify();
    assert!(out.status.success(), "a store as written checks out: {}", String::from_utf8_lossy(&out.stdout));

    let file = data.path().join("branches").join(b).join("modules/pos/live/mishkah.sqlite3");
    let tampered =
        mishkah_store_sqlite::tampering::rewrite_document(&file, "dining_tables", "V-1", "kept", "forged").unwrap();
    assert_eq!(tampered, 1);
    let out = verify();
    assert!(!out.status.success(), "a changed row is found");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("row dining_tables/V-1 differs from what event #"), "{report}");
    assert_eq!(report.lines().count(), 1, "only that row: {report}");
}
