//! Data lifecycle through the real binary: schema migration (additive and refused), unwritable
//! databases (a corrupt one: `hardening.rs`), log compaction and resync, purge / history / restore.

mod common;

use std::process::{Command, Stdio};

use common::{dining_table, get_json, post_json, urlencode, DataCopy, TestServer, WsClient};
use serde_json::{json, Value};

fn pos_schema_path(data: &std::path::Path) -> std::path::PathBuf {
    data.join("schemas/pos_schema.json")
}

fn edit_dining_tables(data: &std::path::Path, edit: impl Fn(&mut Value)) {
    let path = pos_schema_path(data);
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tables = doc["schema"]["tables"].as_array_mut().unwrap();
    let t = tables.iter_mut().find(|t| t["name"] == "dining_tables").unwrap();
    edit(t);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// `mishkah check` on `data` and the store its servers use: its output.
fn check_cli(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["check", "--data"])
        .arg(data)
        .args(common::store_args(data))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// Gives `branch` a second module, `scratchpad` (with our schema: the original's data lacks one).
fn add_scratchpad(data: &std::path::Path, branch: &str) {
    let config = data.join("branches.config.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    doc["branches"][branch]["modules"].as_array_mut().unwrap().push(json!("scratchpad"));
    std::fs::write(&config, doc.to_string()).unwrap();
    let schema = data.join("branches").join(branch).join("modules/scratchpad/schema");
    std::fs::create_dir_all(&schema).unwrap();
    let ours = mishkah_test_support::own_data_dir().join("schemas/scratchpad_schema.json");
    std::fs::copy(ours, schema.join("definition.json")).unwrap();
}

/// Runs `mishkah serve` expecting it to refuse to start; returns its output.
fn refused_start(data: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--port", "0", "--exit-on-stdin-close"])
        .args(common::store_args(data))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "server should have refused to start");
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test]
async fn schema_changes_migrate_additively_and_destructive_ones_are_refused() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let mut server = TestServer::start(data.path()).await;
    server.kill();

    edit_dining_tables(data.path(), |t| {
        t["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "floor", "columnName": "floor", "type": "integer", "nullable": true,
            "primaryKey": false, "unique": false, "index": true}));
    });
    let server = TestServer::start(data.path()).await;
    let r = reqwest::Client::new()
        .post(server.module_url(s.branch, "/tables/dining_tables"))
        .json(&json!({"record": {"id": "T-floor", "name": "Roof", "seats": 2, "floor": "3"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["record"]["floor"], json!(3), "the new field is validated and coerced");
    assert!(server.log().contains("added column dining_tables.floor"), "{}", server.log());
    drop(server);

    // A type the stored rows do not fit (`floor: 3` is no boolean): that module alone stays closed,
    // saying which rows and what to run; the others serve.
    let set_floor_type = |ty: &'static str| {
        move |t: &mut Value| {
            let f = t["fields"].as_array_mut().unwrap().iter_mut().find(|f| f["name"] == "floor").unwrap();
            f["type"] = json!(ty);
        }
    };
    edit_dining_tables(data.path(), set_floor_type("boolean"));
    add_scratchpad(data.path(), s.branch);
    let report = check_cli(data.path());
    let line = report.lines().find(|l| l.contains("`floor` changes type")).unwrap_or_else(|| panic!("{report}"));
    assert!(line.starts_with("error: schemas/pos_schema.json: tables.dining_tables.fields.floor: "), "{line}");
    assert!(line.contains("from integer to boolean; 1 of the") && line.contains("(keys T-floor)"), "{line}");
    let server = TestServer::start(data.path()).await;
    let r = reqwest::get(server.module_url(s.branch, "/tables/dining_tables")).await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default().to_owned();
    assert_eq!(body["error"], "module-unavailable", "{body}");
    for needle in ["`floor` changed type from integer to boolean", "1 of the", "T-floor", "mishkah check"] {
        assert!(message.contains(needle), "{needle} in {message}");
    }
    let other = server.url(&format!("/api/branches/{}/modules/scratchpad/tables/scratchpad_entry", s.branch));
    let other = reqwest::get(other).await.unwrap();
    assert_eq!(other.status().as_u16(), 200, "another module serves");
    drop(server);

    // The type given back: the module opens with every row as it was.
    edit_dining_tables(data.path(), set_floor_type("integer"));
    let server = TestServer::start(data.path()).await;
    let row = get_json(&server.module_url(s.branch, "/tables/dining_tables/T-floor")).await;
    assert_eq!(row["record"]["floor"], json!(3), "{row}");
}

#[tokio::test]
async fn a_field_added_with_a_default_is_given_to_the_rows_stored_before_it() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let mut server = TestServer::start(data.path()).await;
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    let (status, _) = post_json(&tables, json!({"record": {"id": "T-old", "name": "Old", "seats": 4}})).await;
    assert_eq!(status, 201);
    let count = |server: &TestServer, filter: &str| {
        let query = if filter.is_empty() { String::new() } else { format!("?filter={}", urlencode(filter)) };
        let url = server.module_url(s.branch, &format!("/tables/dining_tables/count{query}"));
        async move { get_json(&url).await["count"].as_u64().expect("a count") }
    };
    let stored = count(&server, "").await;
    assert!(stored > 1);
    server.kill();
    let before = common::logged_sequences(data.path(), s.branch, "pos").len();

    edit_dining_tables(data.path(), |t| {
        let fields = t["fields"].as_array_mut().unwrap();
        fields.push(json!({"name": "smoking", "columnName": "smoking", "type": "boolean",
            "nullable": false, "primaryKey": false, "unique": false, "index": false, "defaultValue": false}));
        fields.retain(|f| f["name"] != "zone");
    });
    // `mishkah check` says what the new schema does to the stored rows before serve does it.
    let report = check_cli(data.path());
    let at = "note: schemas/pos_schema.json: tables.dining_tables";
    let added =
        format!("{at}.fields.smoking: branch `{}`: new field; {stored} stored rows get its default false", s.branch);
    assert!(report.lines().any(|l| l == added), "{added} in:\n{report}");
    assert!(
        report.lines().any(|l| l.starts_with(&format!("{at}: branch `{}`: `zone` is no longer", s.branch))),
        "{report}"
    );
    let mut server = TestServer::start(data.path()).await;
    assert_eq!(count(&server, "smoking = false").await, stored, "every stored row has the default");
    assert_eq!(count(&server, "smoking = null").await, 0);
    let row = get_json(&server.module_url(s.branch, "/tables/dining_tables/T-old")).await;
    assert_eq!((row["record"]["smoking"].clone(), row["record"]["seats"].clone()), (json!(false), json!(4)), "{row}");
    assert!(server.log().contains("gave rows stored before these fields existed their defaults"), "{}", server.log());
    // The row's history (the events route for one row): its insert, then the backfill.
    let history = get_json(&server.module_url(s.branch, "/events?table=dining_tables&key=T-old")).await;
    let steps: Vec<(Value, Value)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["change"]["kind"].clone(), e["source"].clone()))
        .collect();
    assert_eq!(steps, vec![(json!("insert"), json!("rest")), (json!("update"), json!("schema"))], "{history}");
    server.kill();

    // Logged as changes (deltas and other nodes see them), once: a second start finds nothing to do.
    let logged = common::read_store(data.path(), s.branch, "pos", |r, _| {
        r.logged_after(0, usize::MAX >> 8).unwrap().into_iter().filter(|l| l.source == "schema").count()
    });
    assert_eq!(logged as u64, stored);
    assert_eq!(common::logged_sequences(data.path(), s.branch, "pos").len(), before + stored as usize);
    let mut server = TestServer::start(data.path()).await;
    assert_eq!(count(&server, "smoking = false").await, stored);
    assert!(!server.log().contains("gave rows stored before"), "{}", server.log());
    server.kill();

    // What each open asks, answered by an index of only the rows lacking the field (SQLite's plan).
    if std::env::var("MISHKAH_TEST_STORE").is_err() {
        use mishkah_server::storage::{ModuleRead, PageQuery};
        let dir = mishkah_server::datadir::DataDir::load(data.path()).unwrap();
        let (schema, _) = dir.schema_for(s.branch, "pos").unwrap();
        let db = data.path().join(format!("branches/{}/modules/pos/live/mishkah.sqlite3", s.branch));
        let reader = mishkah_store_sqlite::ModuleReader::open(&db).unwrap();
        let filter = mishkah_core::query::Filter::parse("smoking = null").unwrap();
        let query =
            PageQuery { filter: Some(filter), after_key: Some("T01".into()), limit: 500, ..PageQuery::default() };
        let plan = reader.page_plan(schema.table("dining_tables").unwrap(), &query).unwrap().join(" | ");
        assert!(plan.contains("USING INDEX bf_t_dining_tables_smoking"), "{plan}");
    }
}

/// A file this process cannot write: `chattr +i` when running as root (root ignores file modes),
/// read-only mode otherwise. Undone on drop, so the temporary directory can be removed.
struct Unwritable {
    path: std::path::PathBuf,
    root: bool,
}

impl Unwritable {
    fn new(path: std::path::PathBuf) -> Unwritable {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        if root {
            let status = Command::new("chattr").arg("+i").arg(&path).status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "chattr +i failed on {}: this test needs a file system with the immutable attribute (ext4)",
                path.display()
            );
        } else {
            let mut mode = std::fs::metadata(&path).unwrap().permissions();
            mode.set_readonly(true);
            std::fs::set_permissions(&path, mode).unwrap();
        }
        Unwritable { path, root }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.root {
            let _ = Command::new("chattr").arg("-i").arg(&self.path).status();
        } else if let Ok(meta) = std::fs::metadata(&self.path) {
            let mut mode = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            mode.set_readonly(false);
            let _ = std::fs::set_permissions(&self.path, mode);
        }
    }
}

#[tokio::test]
async fn a_read_only_database_is_unavailable_with_a_clear_error_and_loses_nothing() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let mut server = TestServer::start(data.path()).await;
    let (status, _) =
        post_json(&server.module_url(s.branch, "/tables/dining_tables"), dining_table("T-ro", "before")).await;
    assert_eq!(status, 201);
    server.kill();
    let db = data.path().join(format!("branches/{}/modules/pos/live/mishkah.sqlite3", s.branch));
    let before = std::fs::read(&db).unwrap();
    {
        let _locked = Unwritable::new(db.clone());
        let mut server = TestServer::start(data.path()).await;
        let (status, body) = common::get_status(&server.module_url(s.branch, "/tables/dining_tables")).await;
        assert_eq!((status, body["error"].as_str()), (503, Some("module-unavailable")), "{body}");
        let health = get_json(&server.url("/healthz")).await;
        assert!(health["unavailable"][0]["reason"].as_str().is_some_and(|r| r.contains("readonly")), "{health}");
        server.kill();
        assert_eq!(std::fs::read(&db).unwrap(), before, "the failed open changed nothing");
    }
    // Writable again: everything acknowledged before is still there.
    let server = TestServer::start(data.path()).await;
    let row = get_json(&server.module_url(s.branch, "/tables/dining_tables?limit=1000")).await;
    let ids: Vec<&str> = row["rows"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(ids.contains(&"T-ro"), "{ids:?}");
}

#[tokio::test]
async fn a_cursor_older_than_the_compacted_log_is_told_to_resync() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    for i in 0..5 {
        http.post(&tables).json(&json!({"record": dining_table(&format!("T-c{i}"), "x")})).send().await.unwrap();
    }
    let head = get_json(&server.module_url(s.branch, "/events?limit=1")).await["lastSequence"].as_u64().unwrap();
    let compacted: Value = post_json(
        &server.url("/api/manage/compact"),
        json!({"branchId": s.branch, "moduleId": "pos", "through": head - 2}),
    )
    .await
    .1;
    assert!(compacted["removed"].as_u64().unwrap() > 0, "{compacted}");
    let delta_url = server.url(&format!("/api/sync/{}/pos/delta", common::urlencode(s.branch)));
    let old: Value = post_json(&delta_url, json!({"version": 1})).await.1;
    assert_eq!(old["requiresFullSync"], json!(true));
    let recent: Value = post_json(&delta_url, json!({"version": head - 2})).await.1;
    assert_eq!(recent["requiresFullSync"], json!(false));
    assert_eq!(recent["deltas"]["dining_tables"].as_array().unwrap().len(), 2);
    // Over WebSocket, an expired cursor gets a full snapshot instead of a delta.
    let mut c = WsClient::connect(&server.ws_url()).await;
    c.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": {"pos": 1}})).await;
    let snap =
        c.recv_where("snapshot or delta", |f| f["type"] == "server:snapshot" || f["type"] == "server:delta").await;
    assert_eq!(snap["type"], "server:snapshot");
}

#[tokio::test]
async fn purge_archives_rows_broadcasts_deletions_and_restore_brings_them_back() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    let before = get_json(&format!("{tables}?limit=1000")).await["count"].as_u64().unwrap();
    assert!(before > 0);
    let (mut watcher, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let purge: Value = post_json(
        &server.url("/api/manage/purge"),
        json!({"branchId": s.branch, "moduleId": "pos", "table": "dining_tables", "archive": "night-1"}),
    )
    .await
    .1;
    assert_eq!(purge["purged"].as_u64(), Some(before), "{purge}");
    let deletion =
        watcher.recv_where("deletion event", |f| f["type"] == "server:event" && f["deleted"] == json!(true)).await;
    assert_eq!(deletion["table"], "dining_tables");
    assert_eq!(get_json(&format!("{tables}?limit=1000")).await["count"], json!(0));
    let history =
        get_json(&server.url(&format!("/api/manage/history?branchId={}&moduleId=pos", common::urlencode(s.branch))))
            .await;
    assert_eq!(history["archives"][0]["archive"], "night-1");
    assert_eq!(history["archives"][0]["rows"].as_u64(), Some(before));
    let restored: Value = post_json(
        &server.url("/api/manage/restore"),
        json!({"branchId": s.branch, "moduleId": "pos", "archive": "night-1"}),
    )
    .await
    .1;
    assert_eq!(restored["restored"].as_u64(), Some(before), "{restored}");
    assert_eq!(get_json(&format!("{tables}?limit=1000")).await["count"].as_u64(), Some(before));
    let missing = http
        .post(server.url("/api/manage/restore"))
        .json(&json!({"branchId": s.branch, "moduleId": "pos", "archive": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn reset_returns_the_module_to_its_seed() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    let seeded = get_json(&format!("{tables}?limit=1000")).await["count"].clone();
    http.post(&tables).json(&json!({"record": dining_table("T-extra", "x")})).send().await.unwrap();
    let reset: Value = http.post(server.module_url(s.branch, "/reset")).send().await.unwrap().json().await.unwrap();
    assert_eq!(reset["status"], "reset", "{reset}");
    assert_eq!(get_json(&format!("{tables}?limit=1000")).await["count"], seeded);
    let menu = get_json(&server.module_url(s.branch, "/tables/menu_items?limit=1000")).await;
    assert_eq!(menu["count"], json!(s.menu_items));
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_keeps_everything_acknowledged() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let mut server = TestServer::start(data.path()).await;
    server.kill();
    // Freeze every database at its current size: the next write that needs a page finds the
    // "disk" full.
    let server = TestServer::start_with(data.path(), &["--max-db-pages", "1"]).await;
    let http = reqwest::Client::new();
    let tables = server.module_url(s.branch, "/tables/dining_tables");
    let mut acknowledged = Vec::new();
    let mut refusal = None;
    for i in 0..200 {
        let id = format!("T-full-{i}");
        let r = http
            .post(&tables)
            .json(&json!({"record": {"id": id, "name": "x", "note": "y".repeat(20_000)}}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => acknowledged.push(id),
            status => {
                refusal = Some((status, r.json::<Value>().await.unwrap()));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("the capped database filled up");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "storage-error");
    assert!(body["message"].as_str().unwrap().contains("full"), "{body}");
    // Still serving, nothing acknowledged lost, and small writes that fit still work or are refused
    // the same clear way.
    let health = get_json(&server.url("/healthz")).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["writesFailing"][0]["branchId"], s.branch, "{health}");
    assert!(health["writesFailing"][0]["reason"].as_str().unwrap().contains("full"), "{health}");
    let rows = get_json(&format!("{tables}?limit=10000")).await;
    let ids: Vec<&str> = rows["rows"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    for id in &acknowledged {
        assert!(ids.contains(&id.as_str()), "{id} was acknowledged and must be stored");
    }
    let menu = get_json(&server.module_url(s.branch, "/tables/menu_items?limit=1000")).await;
    assert_eq!(menu["count"], json!(s.menu_items));
}

fn declare_indexes(data: &std::path::Path, indexes: serde_json::Value) {
    let path = data.join("modules.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    doc["modules"]["pos"]["indexes"] = indexes;
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[tokio::test]
async fn an_index_modules_json_declares_is_created_and_used_and_a_bad_one_refuses_to_start() {
    use mishkah_core::query::Filter;
    use mishkah_server::storage::{ModuleRead, PageQuery};
    use mishkah_store_sqlite::ModuleReader;

    let data = DataCopy::new();
    let s = data.scenario.clone();
    declare_indexes(data.path(), json!({"dining_tables": [["seats", "id"]]}));
    let mut server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    let (status, body) = post_json(&url, json!({"record": {"id": "ix1", "name": "x", "seats": 4}})).await;
    assert_eq!(status, 201, "{body}");
    server.kill();

    let dir = mishkah_server::datadir::DataDir::load(data.path()).unwrap();
    let (schema, _) = dir.schema_for(s.branch, "pos").unwrap();
    let table = schema.table("dining_tables").unwrap();
    let db = data.path().join(format!("branches/{}/modules/pos/live/mishkah.sqlite3", s.branch));
    let reader = ModuleReader::open(&db).unwrap();
    let query = PageQuery {
        filter: Some(Filter::parse("seats = 4").unwrap()),
        sort: vec![("id".into(), true)],
        limit: 51,
        ..PageQuery::default()
    };
    let plan = reader.page_plan(table, &query).unwrap().join(" | ");
    assert!(plan.contains("m_seats_id") && !plan.contains("TEMP B-TREE"), "filtered and sorted by the index: {plan}");

    declare_indexes(data.path(), json!({"dining_tables": [["seats", "nope"]]}));
    let out = refused_start(data.path());
    assert!(out.contains("no field `nope`"), "{out}");
    declare_indexes(data.path(), json!({"no_such_table": [["id"]]}));
    assert!(refused_start(data.path()).contains("no table `no_such_table`"));
}
