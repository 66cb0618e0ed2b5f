//! An operator's mistakes (#24): a second server on a directory in use, a seed deleted or broken
//! after the first start, a corrupt module database, rules without auth. Each fails without the
//! defence it names.

mod common;

use std::time::Duration;

use common::attack::*;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_second_server_on_a_data_directory_in_use_refuses_to_start_and_names_the_first() {
    let data = DataCopy::new();
    let first = TestServer::start(data.path()).await;
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-close"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while second.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server started on a data directory in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = second.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&second.stderr).into_owned() + &String::from_utf8_lossy(&second.stdout);
    assert!(!second.status.success(), "{said}");
    assert!(said.contains("in use by another mishkah server") && said.contains("pid"), "{said}");
    // The first still serves, alone.
    assert_eq!(get_status(&first.url("/healthz")).await.0, 200);
}

/// Adds a `staff` module whose seed repeats a unique pin, on a branch `hq` of its own.
fn add_staff_module(data: &std::path::Path) {
    let mut modules = read_json(&data.join("modules.json"));
    modules["modules"]["staff"] = json!({"label": "Staff", "tables": ["staff"]});
    write_json(&data.join("modules.json"), &modules);
    let mut branches = read_json(&data.join("branches.config.json"));
    branches["branches"]["hq"] = json!({"modules": ["staff"]});
    write_json(&data.join("branches.config.json"), &branches);
    let dir = data.join("branches/hq/modules/staff");
    std::fs::create_dir_all(dir.join("schema")).unwrap();
    std::fs::create_dir_all(dir.join("seeds")).unwrap();
    write_json(
        &dir.join("schema/definition.json"),
        &json!({"version": 1, "tables": {"staff": {"fields": {
            "id": {"type": "text", "primaryKey": true},
            "name": {"type": "text"},
            "pin": {"type": "text", "unique": true}}}}}),
    );
    write_json(
        &dir.join("seeds/initial.json"),
        &json!({"tables": {"staff": [
            {"id": "s1", "name": "Huda", "pin": "1122"},
            {"id": "s2", "name": "Omar", "pin": "1122"}]}}),
    );
}

#[tokio::test]
async fn a_module_that_started_once_starts_again_from_its_database_alone() {
    let data = DataCopy::new();
    add_staff_module(data.path());
    let staff = |server: &TestServer| server.url("/api/branches/hq/modules/staff/tables/staff");
    let mut server = TestServer::start(data.path()).await;
    let (status, body) = get_status(&staff(&server)).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().or_else(|| body.as_array()).cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "the seed loads whole (its unique pin relaxed): {body}");
    server.kill();

    // The operator deletes the seed, then breaks it: the module starts from its database.
    let seed = data.path().join("branches/hq/modules/staff/seeds/initial.json");
    std::fs::remove_file(&seed).unwrap();
    let mut server = TestServer::start(data.path()).await;
    let (status, body) = get_status(&staff(&server)).await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(get_json(&server.url("/healthz")).await["status"], "ok");
    server.kill();
    std::fs::write(&seed, "{ not json").unwrap();
    let server = TestServer::start(data.path()).await;
    let (status, body) = get_status(&staff(&server)).await;
    assert_eq!(status, 200, "{body}\n{}", server.log());
}

#[tokio::test]
async fn a_corrupt_module_database_is_unavailable_alone_and_every_other_module_serves() {
    let data = DataCopy::new();
    add_staff_module(data.path());
    let b = data.scenario.branch;
    let mut server = TestServer::start(data.path()).await;
    let staff = server.url("/api/branches/hq/modules/staff/tables/staff");
    assert_eq!(get_status(&staff).await.0, 200);
    server.kill();
    let db = data.path().join("branches/hq/modules/staff/live/mishkah.sqlite3");
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", db.display()));
    }
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();

    let server = TestServer::start(data.path()).await;
    let staff = server.url("/api/branches/hq/modules/staff/tables/staff");
    let (status, body) = get_status(&staff).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("module-unavailable")), "{body}");
    let health = get_json(&server.url("/healthz")).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["unavailable"][0]["branchId"], "hq", "{health}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("mishkah_module_unavailable{branch=\"hq\",module=\"staff\"} 1"), "{metrics}");
    // Every other module reads and writes.
    assert_eq!(get_status(&server.module_url(b, "/tables/dining_tables")).await.0, 200);
    let (status, body) =
        post_json(&server.module_url(b, "/tables/dining_tables"), json!({"record": dining_table("T-OK", "ok")})).await;
    assert_eq!(status, 201, "{body}");
    // The corrupt file is left as it was, for the operator to recover.
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192]);
}

#[tokio::test]
async fn rules_in_force_with_auth_off_are_warned_about_at_startup() {
    let data = DataCopy::new();
    write_json(&data.path().join("security/rules.json"), &rules());
    let server = TestServer::start(data.path()).await;
    assert!(server.log().contains("security rules are in force with --auth off"), "{}", server.log());
}
