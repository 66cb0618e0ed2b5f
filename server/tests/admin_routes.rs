//! The admin routes the console uses, on the real binary: keys created, listed without their
//! secret, refused when repeated or badly named, revoked (then refused); the rules file checked
//! as it is on disk; backups listed and requested, or `backup-not-configured`. Only an admin may
//! use any of them when auth is required.

mod common;

use std::process::Command;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "admin-routes-secret-of-some-length";

fn mint(role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["token", "--jwt-secret", SECRET, "--sub", "ops", "--role", role])
        .output()
        .expect("run mishkah token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn call(method: reqwest::Method, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn get_json_as(url: &str, token: &str) -> Value {
    call(reqwest::Method::GET, url, token, None).await.1
}

#[tokio::test]
async fn keys_rules_and_backups_are_managed_by_admins_only() {
    use reqwest::Method;
    let data = DataCopy::new();
    let backups = tempfile::tempdir().unwrap();
    let target = backups.path().to_str().unwrap();
    let args = ["--auth", "required", "--jwt-secret", SECRET, "--backup-to", target, "--backup-ship-ms", "100"];
    let server = TestServer::start_with(data.path(), &args).await;
    let (admin, cashier) = (mint("admin"), mint("cashier"));

    for (method, path) in [(Method::GET, "/api/keys"), (Method::GET, "/api/rules"), (Method::POST, "/api/backups")] {
        let (status, body) = call(method, &server.url(path), &cashier, None).await;
        assert_eq!((status, body["error"].clone()), (403, json!("forbidden")), "{path}: {body}");
    }

    // A key: shown once, listed without it, refused twice, working until revoked.
    let new = json!({"name": "till-1", "role": "cashier", "branches": [data.scenario.branch]});
    let (status, made) = call(Method::POST, &server.url("/api/keys"), &admin, Some(new.clone())).await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mk_"));
    let (_, listed) = call(Method::GET, &server.url("/api/keys"), &admin, None).await;
    assert_eq!(listed["keys"][0]["name"], "till-1");
    assert!(!listed.to_string().contains(&key) && listed["keys"][0].get("sha256").is_none(), "{listed}");
    let (status, again) = call(Method::POST, &server.url("/api/keys"), &admin, Some(new)).await;
    assert_eq!((status, again["error"].clone()), (409, json!("key-exists")));
    let bad = json!({"name": "no spaces", "role": "x"});
    let (status, refused) = call(Method::POST, &server.url("/api/keys"), &admin, Some(bad)).await;
    assert_eq!((status, refused["error"].clone()), (400, json!("invalid-key-name")));
    let (status, _) = call(Method::POST, &server.url("/api/keys"), &admin, Some(json!({"name": "x"}))).await;
    assert_eq!(status, 400, "a key needs a role");
    let rows = server.module_url(data.scenario.branch, "/tables/dining_tables?limit=1");
    assert_eq!(call(Method::GET, &rows, &key, None).await.0, 200);
    let (status, _) = call(Method::DELETE, &server.url("/api/keys/till-1"), &admin, None).await;
    assert_eq!(status, 200);
    assert_eq!(call(Method::GET, &rows, &key, None).await.0, 401, "revoked");
    let (status, gone) = call(Method::DELETE, &server.url("/api/keys/till-1"), &admin, None).await;
    assert_eq!((status, gone["error"].clone()), (404, json!("key-not-found")));

    // The rules: none yet; a broken file written since the start is reported as on disk.
    let (_, rules) = call(Method::GET, &server.url("/api/rules"), &admin, None).await;
    assert_eq!((rules["enforced"].clone(), rules["problems"].clone()), (json!(false), json!([])), "{rules}");
    let broken = json!({"modules": {"pos": {"tables": {"order_header": {"create": "seats >>"}}}}});
    std::fs::create_dir_all(data.path().join("security")).unwrap();
    std::fs::write(data.path().join("security/rules.json"), broken.to_string()).unwrap();
    let (_, rules) = call(Method::GET, &server.url("/api/rules"), &admin, None).await;
    let problems = rules["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{rules}");
    assert!(problems[0]
        .as_str()
        .unwrap()
        .starts_with("error: security/rules.json: modules.pos.tables.order_header.create: invalid filter"));
    assert!(rules["text"].as_str().unwrap().contains("seats >>"));

    // The check: a schema edited on disk, measured against the stored rows before a restart.
    let schema_path = data.path().join("schemas/pos_schema.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(&schema_path).unwrap()).unwrap();
    let tables = schema["schema"]["tables"].as_array_mut().unwrap();
    let dining = tables.iter_mut().find(|t| t["name"] == "dining_tables").unwrap();
    dining["fields"].as_array_mut().unwrap().push(json!({"name": "smoking", "columnName": "smoking",
        "type": "boolean", "nullable": false, "defaultValue": false}));
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    let stored = get_json_as(&server.module_url(data.scenario.branch, "/tables/dining_tables/count"), &admin).await;
    let (status, checked) = call(Method::GET, &server.url("/api/check"), &admin, None).await;
    assert_eq!(status, 200);
    let expected = format!(
        "note: schemas/pos_schema.json: tables.dining_tables.fields.smoking: branch `{}`: new field; {} stored rows get its default false",
        data.scenario.branch, stored["count"]
    );
    assert!(
        checked["problems"].as_array().unwrap().iter().any(|p| p["line"] == expected.as_str()),
        "{expected} in {checked}"
    );
    assert_eq!(call(Method::GET, &server.url("/api/check"), &cashier, None).await.0, 403);

    // Backups: the first snapshot, then one more on request.
    let snapshots = || async { call(Method::GET, &server.url("/api/backups"), &admin, None).await.1 };
    let mut listed = snapshots().await;
    for _ in 0..100 {
        if !listed["snapshots"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listed = snapshots().await;
    }
    let first = listed["snapshots"].as_array().unwrap().len();
    assert!(first >= 1 && listed["configured"] == json!(true), "{listed}");
    let (status, _) = call(Method::POST, &server.url("/api/backups"), &admin, None).await;
    assert_eq!(status, 202);
    for _ in 0..100 {
        if listed["snapshots"].as_array().unwrap().len() > first {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        listed = snapshots().await;
    }
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), first + 1, "{listed}");
}

#[tokio::test]
async fn without_a_backup_target_backups_say_so() {
    let data = DataCopy::new();
    let server = TestServer::start(data.path()).await;
    let listed = get_json(&server.url("/api/backups")).await;
    assert_eq!(listed, json!({"configured": false, "snapshots": []}));
    let (status, body) = post_json(&server.url("/api/backups"), Value::Null).await;
    assert_eq!((status, body["error"].clone()), (409, json!("backup-not-configured")), "{body}");
}
