//! Continuous backup (`serve --backup-to`, #26): the logs shipped as they commit, snapshots on a
//! schedule, and `mishkah restore --to-seq N` — the nearest snapshot before N, then the shipped log
//! replayed to exactly N — giving back exactly what a reader saw at N; onto a directory and onto
//! a real S3-compatible server (moto), after which the disk is destroyed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use proptest::strategy::{Strategy, ValueTree};
use reqwest::Method;
use serde_json::{json, Value};

fn cli(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mishkah"));
    command.args(args).env_remove("MISHKAH_STORE").env_remove("MISHKAH_DATA");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run mishkah")
}

/// A restore is a data directory of SQLite files whatever the store backed up: the copy's
/// pointer to its test database (under `MISHKAH_TEST_STORE=postgres`) is not for it.
fn sqlite_only(restored: &Path) {
    let _ = std::fs::remove_file(restored.join(".test-store"));
}

/// A metric's value for the branch's `pos` module.
async fn pos_metric(server: &TestServer, name: &str, branch: &str) -> Option<u64> {
    let text = reqwest::get(server.url("/metrics")).await.ok()?.text().await.ok()?;
    let wanted = format!("branch=\"{branch}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&wanted) && l.contains("module=\"pos\""))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Waits until the branch's `pos` log is shipped through `head`.
async fn shipped_through(server: &TestServer, branch: &str, head: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pos_metric(server, "mishkah_backup_shipped_sequence", branch).await < Some(head) {
        assert!(tokio::time::Instant::now() < deadline, "the log was not shipped through {head}:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pos_metric(server, "mishkah_backup_lag", branch).await, Some(0));
}

/// What a reader sees of the tables the test writes: `table/id` → row.
async fn observe(server: &TestServer, branch: &str) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    for table in ["dining_tables", "order_header"] {
        let page = get_json(&server.module_url(branch, &format!("/tables/{table}?limit=10000"))).await;
        for row in page["rows"].as_array().expect("rows") {
            seen.insert(format!("{table}/{}", row["id"].as_str().unwrap_or_default()), row.clone());
        }
    }
    seen
}

/// One write of the generated history.
#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    Rename(u8, u8),
    Delete(u8),
    /// A transaction: an order and a renamed table, together.
    Order(u8),
}

fn history() -> Vec<Op> {
    let id = 0u8..8;
    let op = proptest::prop_oneof![
        id.clone().prop_map(Op::Insert),
        (id.clone(), 0u8..100).prop_map(|(i, n)| Op::Rename(i, n)),
        id.clone().prop_map(Op::Delete),
        id.prop_map(Op::Order),
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    proptest::collection::vec(op, 90).new_tree(&mut runner).expect("a history").current()
}

/// Runs one write; the sequence it ended at, when it committed.
async fn write(server: &TestServer, b: &str, op: &Op) -> Option<u64> {
    let tables = server.module_url(b, "/tables/dining_tables");
    let (status, body) = match op {
        Op::Insert(i) => {
            post_json(&tables, json!({"record": dining_table(&format!("P-{i}"), &format!("table {i}"))})).await
        }
        Op::Rename(i, n) => {
            let record = json!({"id": format!("P-{i}"), "name": format!("renamed {n}")});
            send_json(Method::PATCH, &tables, json!({"record": record})).await
        }
        Op::Delete(i) => send_json(Method::DELETE, &format!("{tables}/P-{i}"), Value::Null).await,
        Op::Order(i) => {
            let writes = json!([
                {"action": "insert", "table": "order_header", "record": order_header(None)},
                {"action": "merge", "table": "dining_tables", "record": {"id": format!("P-{i}"), "name": "ordered"}}]);
            post_json(&server.module_url(b, "/transactions"), json!({"requestId": "o", "writes": writes})).await
        }
    };
    if !(200..300).contains(&status) {
        return None;
    }
    body["sequence"].as_u64().or(body["lastSequence"].as_u64())
}

fn restore_to(target: &str, into: &Path, b: &str, n: u64, env: &[(&str, String)]) -> String {
    let n = n.to_string();
    let dir = into.to_string_lossy();
    let out =
        cli(&["restore", "--from", target, "--data", &dir, "--branch", b, "--module", "pos", "--to-seq", &n], env);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "restore to {n}: {said}");
    sqlite_only(into);
    said
}

#[tokio::test]
async fn restoring_to_any_sequence_gives_exactly_what_a_reader_saw_there() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    let flags = ["--backup-to", &to, "--backup-every", "1s", "--backup-ship-ms", "50", "--backup-keep", "100"];
    let server = TestServer::start_with(data.path(), &flags).await;

    // A reader's view after every committed write, by the sequence it ended at.
    let mut seen: BTreeMap<u64, BTreeMap<String, Value>> = BTreeMap::new();
    for (i, op) in history().iter().enumerate() {
        if let Some(sequence) = write(&server, b, op).await {
            seen.insert(sequence, observe(&server, b).await);
        }
        if i % 20 == 19 {
            // Snapshots come every second: later points restore from later snapshots.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    let head = *seen.keys().last().expect("writes committed");
    shipped_through(&server, b, head).await;
    let snapshots = std::fs::read_dir(target.path().join("snapshots")).expect("snapshots").count();
    assert!(snapshots >= 3, "one snapshot per second of writing, {snapshots} found");

    // Restoring to any point a reader saw gives back exactly that: the property, over points
    // drawn from the whole history (the first and the last always among them).
    let points: Vec<u64> = seen.keys().copied().collect();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let drawn = proptest::sample::subsequence(points[1..points.len() - 1].to_vec(), 5);
    let mut chosen = drawn.new_tree(&mut runner).expect("points").current();
    chosen.extend([points[0], head]);
    let mut from_later_snapshots = 0;
    for n in chosen {
        let dir = tempfile::tempdir().expect("a new data directory");
        let into = dir.path().join("data");
        let said = restore_to(&to, &into, b, n, &[]);
        let replayed_from: u64 = said
            .split("snapshot through sequence ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|s| s.parse().ok())
            .expect("the restore names its snapshot's head");
        assert!(replayed_from <= n, "{said}");
        from_later_snapshots += usize::from(replayed_from > points[0]);
        let mut again = TestServer::start(&into).await;
        assert_eq!(
            get_json(&again.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64(),
            Some(n),
            "the restored log ends at {n}"
        );
        assert_eq!(observe(&again, b).await, seen[&n], "the state at {n}");
        // The restored module goes on: its next invoice number was never given before it.
        let (status, body) =
            post_json(&again.module_url(b, "/tables/order_header"), json!({"record": order_header(None)})).await;
        assert_eq!(status, 201, "{body}");
        let now = observe(&again, b).await;
        let added = now.iter().find(|(k, _)| !seen[&n].contains_key(*k)).expect("the new order");
        let next = added.1["invoiceSequence"].as_i64().expect("an invoice number");
        let before_n: Vec<i64> = seen[&n].values().filter_map(|r| r["invoiceSequence"].as_i64()).collect();
        assert!(before_n.iter().all(|used| *used < next), "invoice {next} after restoring to {n}: {before_n:?}");
        let _ = again.stop();
    }
    assert!(from_later_snapshots > 0, "some point was restored from a snapshot later than the first");

    // To a time: every event committed at or before it, whatever the module.
    let log = get_json(&server.module_url(b, "/events?after=0&limit=5000")).await;
    let at: BTreeMap<u64, String> = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| Some((e["sequence"].as_u64()?, e["createdAt"].as_str()?.to_owned())))
        .collect();
    let n = *points[points.len() / 2..]
        .iter()
        .find(|n| at.get(&(**n + 1)).is_some_and(|next| *next > at[n]))
        .expect("a point the next commit came a millisecond later than");
    let dir = tempfile::tempdir().expect("a new data directory");
    let into = dir.path().join("data");
    let out = cli(&["restore", "--from", &to, "--data", &into.to_string_lossy(), "--to-time", &at[&n]], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sqlite_only(&into);
    let again = TestServer::start(&into).await;
    assert_eq!(get_json(&again.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64(), Some(n));
    assert_eq!(observe(&again, b).await, seen[&n], "the state at {}", at[&n]);
}

/// What `/api/manage/history` lists of the branch's `pos` archives.
async fn archives(server: &TestServer, b: &str) -> Value {
    let url = server.url(&format!("/api/manage/history?branchId={}&moduleId=pos", urlencode(b)));
    get_json(&url).await["archives"].clone()
}

#[tokio::test]
async fn a_purge_after_the_newest_snapshot_is_restored_with_its_archive() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    // A snapshot at start, the next in an hour: the purge reaches the target only as shipped log.
    let flags = ["--backup-to", &to, "--backup-every", "1h", "--backup-ship-ms", "50"];
    let mut server = TestServer::start_with(data.path(), &flags).await;
    for i in 0..3 {
        let url = server.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("P-{i}"), "to purge")})).await.0, 201);
    }
    let (status, purged) = post_json(
        &server.url("/api/manage/purge"),
        json!({"branchId": b, "moduleId": "pos", "table": "dining_tables", "archive": "closing-day"}),
    )
    .await;
    assert_eq!(status, 200, "{purged}");
    let archived = archives(&server, b).await;
    assert!(archived.as_array().is_some_and(|a| a.iter().any(|x| x["archive"] == "closing-day")), "{archived}");
    let head = get_json(&server.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    shipped_through(&server, b, head).await;
    server.stop();

    let restored = tempfile::tempdir().expect("a restore");
    let into = restored.path().join("data");
    let out = cli(&["restore", "--from", &to, "--data", &into.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sqlite_only(&into);
    let again = TestServer::start(&into).await;
    let rows = get_json(&again.module_url(b, "/tables/dining_tables")).await;
    assert_eq!(rows["rows"], json!([]), "the purge is restored");
    let strip = |list: Value| -> Vec<Value> {
        list.as_array().unwrap().iter().map(|a| json!([a["archive"], a["table"], a["rows"]])).collect()
    };
    assert_eq!(strip(archives(&again, b).await), strip(archived), "and so is what it archived");
}

#[tokio::test]
async fn compaction_keeps_what_was_not_shipped_yet() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    // One round at start, the next an hour later: what is written now stays unshipped.
    let server = TestServer::start_with(data.path(), &["--backup-to", &to, "--backup-ship-ms", "3600000"]).await;
    let head = get_json(&server.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    shipped_through(&server, b, head).await;
    for i in 0..5 {
        let url = server.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("U-{i}"), "unshipped")})).await.0, 201);
    }
    let (status, compacted) =
        post_json(&server.url("/api/manage/compact"), json!({"branchId": b, "moduleId": "pos", "through": head + 5}))
            .await;
    assert_eq!(status, 200, "{compacted}");
    assert_eq!(compacted["through"].as_u64(), Some(head), "compacted only what was shipped: {compacted}");
    let kept = get_json(&server.module_url(b, &format!("/events?after={head}"))).await;
    assert_eq!(kept["events"].as_array().map(Vec::len), Some(5), "{kept}");
}

/// A local S3-compatible server (moto), stopped when dropped.
struct Moto {
    child: std::process::Child,
    endpoint: String,
    _log: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto's server on a port it picks itself (read back from what it prints), with a
    /// bucket `backups`. `None` when moto is not installed (`scripts/setup` installs it; under
    /// `CI=true` its absence fails the test).
    async fn start() -> Option<Moto> {
        let installed = Command::new("python3").args(["-c", "import moto.server"]).output();
        if !installed.as_ref().is_ok_and(|o| o.status.success()) {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "moto is missing under CI: {installed:?}");
            eprintln!("skipped: moto is not installed; scripts/setup installs it");
            return None;
        }
        let log_dir = tempfile::tempdir().expect("a log directory");
        let log = log_dir.path().join("moto.log");
        let file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start moto");
        let mut moto = Moto { child, endpoint: String::new(), _log: log_dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = said.split("Running on ").nth(1) {
                moto.endpoint = rest.split_whitespace().next().unwrap_or_default().trim_end_matches('/').to_owned();
                if reqwest::get(&moto.endpoint).await.is_ok() {
                    break;
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "moto_server did not start: {said}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let created = reqwest::Client::new().put(format!("{}/backups", moto.endpoint)).send().await.expect("a bucket");
        assert!(created.status().is_success(), "{}", created.status());
        Some(moto)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

#[tokio::test]
async fn a_destroyed_disk_loses_only_the_writes_of_the_last_shipping_round() {
    let data = DataCopy::new();
    let Some(moto) = Moto::start().await else { return };
    let b = data.scenario.branch;
    let target = "s3://backups/branch-office";
    let mut server = TestServer::start_env(
        data.path(),
        &["--backup-to", target, "--backup-every", "1h", "--backup-ship-ms", "200"],
        &moto.env(),
    )
    .await;
    let (mut ws, _) = WsClient::hello(&server.ws_url(), b).await;
    // Writes stream in for three seconds; each acknowledgement is timed.
    let started = tokio::time::Instant::now();
    let mut acked: Vec<(u64, String, tokio::time::Instant)> = Vec::new();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let id = format!("S3-{i}");
        ws.send(json!({"type": "client:publish", "moduleId": "pos", "table": "dining_tables",
                       "action": "module:insert", "record": dining_table(&id, "s3"), "requestId": id}))
            .await;
        let ack = ws.recv_where("an ack", |f| f["type"] == "server:ack" || f["type"] == "server:error").await;
        assert_eq!(ack["type"], "server:ack", "{ack}");
        acked.push((ack["sequence"].as_u64().expect("a sequence"), id, tokio::time::Instant::now()));
        i += 1;
    }
    // The disk is destroyed with the server on it: no goodbye, no last round.
    server.kill();
    let killed = tokio::time::Instant::now();
    std::fs::remove_dir_all(data.path().join("branches")).expect("destroy the modules");

    let dir = tempfile::tempdir().expect("a new disk");
    let into = dir.path().join("data");
    let out = cli(&["restore", "--from", target, "--data", &into.to_string_lossy()], &moto.env());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    sqlite_only(&into);
    let again = TestServer::start(&into).await;
    let held: std::collections::BTreeSet<String> =
        observe(&again, b).await.keys().filter_map(|k| k.strip_prefix("dining_tables/")).map(str::to_owned).collect();
    let lost: Vec<&(u64, String, tokio::time::Instant)> =
        acked.iter().filter(|(_, id, _)| !held.contains(id)).collect();
    // What was lost is a tail: every write before the first lost one is held.
    if let Some(first) = lost.first() {
        assert!(acked.iter().filter(|a| a.0 < first.0).all(|a| held.contains(&a.1)), "only a tail is lost");
    }
    let window = lost.first().map_or(Duration::ZERO, |(_, _, at)| killed - *at);
    eprintln!(
        "destroyed disk: {} of {} acknowledged writes lost, acknowledged in the last {} ms before the kill",
        lost.len(),
        acked.len(),
        window.as_millis()
    );
    // Shipping every 200 ms: at most a round or two of writes is lost, never seconds of them.
    assert!(window < Duration::from_millis(2500), "{} ms of writes lost", window.as_millis());
}

#[tokio::test]
async fn with_several_nodes_one_ships_and_another_takes_over_when_it_stops() {
    let database = mishkah_test_support::postgres::TestDatabase::new();
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let data = DataCopy::new();
        let _ = std::fs::remove_file(data.path().join(".test-store"));
        let flags = ["--store", database.url.as_str(), "--backup-to", &to, "--backup-ship-ms", "100"];
        let server = TestServer::start_with(data.path(), &flags).await;
        nodes.push((data, server));
    }
    let b = nodes[0].0.scenario.branch;
    let write = |node: &TestServer, id: String| {
        let url = node.module_url(b, "/tables/dining_tables");
        async move { assert_eq!(post_json(&url, json!({"record": dining_table(&id, "node")})).await.0, 201) }
    };
    for i in 0..20 {
        write(&nodes[i % 2].1, format!("N-{i}")).await;
    }
    let head = get_json(&nodes[0].1.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    // One node ships (the lease's holder): the other's metrics never name a shipped sequence.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let shipper = loop {
        let mut shipped = Vec::new();
        for (_, node) in &nodes {
            shipped.push(pos_metric(node, "mishkah_backup_shipped_sequence", b).await);
        }
        if let Some(i) = shipped.iter().position(|s| *s >= Some(head)) {
            assert_eq!(shipped[1 - i], None, "only one node ships");
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "not shipped through {head}: {shipped:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The shipper stops; the other node's writes are shipped once it takes over.
    nodes[shipper].1.kill();
    let other = &nodes[1 - shipper].1;
    for i in 20..30 {
        write(other, format!("N-{i}")).await;
    }
    let head = get_json(&other.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    shipped_through(other, b, head).await;

    // Every sequence shipped once, and a restore holds every write of both nodes.
    let mut spans: Vec<(u64, u64)> = std::fs::read_dir(target.path().join("log").join(b).join("pos"))
        .expect("segments")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let (first, last) = name.strip_suffix(".json.gz")?.split_once('-')?;
            Some((first.parse().ok()?, last.parse().ok()?))
        })
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 + 1 == w[1].0), "segments follow each other, none twice: {spans:?}");
    let dir = tempfile::tempdir().expect("a new data directory");
    let into = dir.path().join("data");
    let out = cli(&["restore", "--from", &to, "--data", &into.to_string_lossy()], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = TestServer::start(&into).await;
    let held = observe(&again, b).await;
    let missing: Vec<String> =
        (0..30).map(|i| format!("dining_tables/N-{i}")).filter(|k| !held.contains_key(k)).collect();
    assert!(missing.is_empty(), "every write restored; missing {missing:?}");
}

/// Shipping looks at the open modules after its first round: a module closed for idleness stays
/// closed (it is written only while open), and its log is shipped before it closes.
#[tokio::test]
async fn shipping_does_not_keep_idle_modules_open() {
    let data = DataCopy::new();
    if data.path().join(".test-store").exists() {
        eprintln!("skipped: with a shared store every round looks at every module, by design");
        return;
    }
    let b = data.scenario.branch;
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    let server =
        TestServer::start_with(data.path(), &["--backup-to", &to, "--backup-ship-ms", "100", "--idle-close", "1"])
            .await;
    let url = server.module_url(b, "/tables/dining_tables");
    assert_eq!(post_json(&url, json!({"record": dining_table("I-1", "idle")})).await.0, 201);
    let head = get_json(&server.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    shipped_through(&server, b, head).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !server.log().contains("closed an idle module") {
        assert!(tokio::time::Instant::now() < deadline, "the idle module was kept open:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_module_closed_before_its_last_events_were_shipped_is_shipped_anyway() {
    let data = DataCopy::new();
    let (b, other) = (data.scenario.branch, data.scenario.other_branch);
    let target = tempfile::tempdir().expect("a target");
    let to = target.path().to_string_lossy().into_owned();
    // One module open at a time; rounds a second apart, so writes wait a while for the next.
    let flags = ["--backup-to", &to, "--backup-ship-ms", "1000", "--max-open-modules", "1"];
    let server = TestServer::start_with(data.path(), &flags).await;
    let first = get_json(&server.module_url(b, "/events?limit=1")).await["lastSequence"].as_u64().expect("a head");
    shipped_through(&server, b, first).await;
    for i in 0..3 {
        let url = server.module_url(b, "/tables/dining_tables");
        assert_eq!(post_json(&url, json!({"record": dining_table(&format!("C-{i}"), "closed")})).await.0, 201);
    }
    // Another branch's module takes the only place: this one closes with its writes unshipped.
    let _ = get_json(&server.module_url(other, "/tables/dining_tables")).await;
    shipped_through(&server, b, first + 3).await;
}
