//! Several stateless nodes on one PostgreSQL: every client on every node gets every write of its
//! branch once and in order, whichever node took it; a node killed mid-stream loses no
//! acknowledged write and its clients resume elsewhere from their cursor; a lost notification
//! (the listening connection killed) only delays delivery, read back from the log.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{dining_table, DataCopy, TestServer, WsClient};
use mishkah_test_support::postgres::TestDatabase;
use serde_json::{json, Value};

/// `n` nodes sharing `database`, each with its own copy of the configuration; started one after
/// the other (the first seeds the modules).
async fn nodes(database: &TestDatabase, n: usize) -> (Vec<DataCopy>, Vec<TestServer>) {
    started(database, n, &[], true).await
}

/// `n` nodes sharing `database`, started with `args` too; `hello`: each opens the branch's module
/// before the next starts.
async fn started(database: &TestDatabase, n: usize, args: &[&str], hello: bool) -> (Vec<DataCopy>, Vec<TestServer>) {
    let mut datas = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..n {
        let data = DataCopy::new();
        // Under MISHKAH_TEST_STORE=postgres a copy has a database of its own: these share one.
        let _ = std::fs::remove_file(data.path().join(".test-store"));
        let mut all = vec!["--store", database.url.as_str()];
        all.extend_from_slice(args);
        let server = TestServer::start_with(data.path(), &all).await;
        if hello {
            let _ = WsClient::hello(&server.ws_url(), data.scenario.branch).await;
        }
        datas.push(data);
        servers.push(server);
    }
    (datas, servers)
}

async fn write(server: &TestServer, branch: &str, id: &str) {
    let r = reqwest::Client::new()
        .post(server.module_url(branch, "/tables/dining_tables"))
        .json(&json!({"record": dining_table(id, "node")}))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap_or_default());
}

/// Collects `server:event`s after `after` until every id of `expected` arrived; returns the
/// sequences per id, asserting no id twice and sequences increasing.
async fn collect(ws: &mut WsClient, after: u64, expected: &[String], within: Duration) -> BTreeMap<String, u64> {
    let mut got = BTreeMap::new();
    let mut last = after;
    let deadline = tokio::time::Instant::now() + within;
    while got.len() < expected.len() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = ws.next(left).await else {
            let missing: Vec<_> = expected.iter().filter(|id| !got.contains_key(*id)).collect();
            panic!("missing {missing:?} after {} events", got.len());
        };
        if frame["type"] != "server:event" {
            continue;
        }
        let sequence = frame["sequence"].as_u64().expect("a sequence");
        if sequence <= after {
            continue;
        }
        assert!(sequence > last, "out of order or twice: {sequence} after {last}: {frame}");
        last = sequence;
        let id = frame["recordRef"]["id"].as_str().unwrap_or_default().to_owned();
        if expected.contains(&id) {
            assert!(got.insert(id.clone(), sequence).is_none(), "{id} arrived twice");
        }
    }
    got
}

#[tokio::test]
async fn every_client_on_every_node_gets_every_write_once_in_order() {
    let database = TestDatabase::new();
    let (datas, servers) = nodes(&database, 3).await;
    let branch = datas[0].scenario.branch;
    let mut clients = Vec::new();
    for server in &servers {
        for _ in 0..2 {
            let (ws, snapshot) = WsClient::hello(&server.ws_url(), branch).await;
            clients.push((ws, snapshot["modules"]["pos"]["version"].as_u64().expect("a version")));
        }
    }
    // Writes go to the nodes in turn, some at once.
    let ids: Vec<String> = (0..30).map(|i| format!("N-{i:02}")).collect();
    for chunk in ids.chunks(6) {
        let writes = chunk.iter().enumerate().map(|(i, id)| write(&servers[i % 3], branch, id));
        futures_util::future::join_all(writes).await;
    }
    let mut seen = Vec::new();
    for (ws, after) in &mut clients {
        seen.push(collect(ws, *after, &ids, Duration::from_secs(15)).await);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "every client saw the same sequence for each write");
    let sequences: Vec<u64> = seen[0].values().copied().collect();
    let distinct: std::collections::BTreeSet<u64> = sequences.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "one sequence per write");
}

#[tokio::test]
async fn a_killed_node_loses_no_acknowledged_write_and_its_clients_resume_elsewhere() {
    let database = TestDatabase::new();
    let (datas, mut servers) = nodes(&database, 2).await;
    let branch = datas[0].scenario.branch;
    let (mut on_first, snapshot) = WsClient::hello(&servers[0].ws_url(), branch).await;
    let cursor = snapshot["modules"]["pos"]["version"].as_u64().expect("a version");
    let first: Vec<String> = (0..10).map(|i| format!("K-{i:02}")).collect();
    for id in &first {
        write(&servers[0], branch, id).await;
    }
    let delivered = collect(&mut on_first, cursor, &first[..5], Duration::from_secs(10)).await;
    let resume_from = delivered.values().copied().max().expect("some delivered");
    servers[0].kill();
    // The other node takes writes meanwhile; the client comes back there with its cursor.
    let later: Vec<String> = (0..5).map(|i| format!("L-{i:02}")).collect();
    for id in &later {
        write(&servers[1], branch, id).await;
    }
    let mut again = WsClient::connect(&servers[1].ws_url()).await;
    again.send(json!({"type": "client:hello", "branchId": branch, "cursor": resume_from})).await;
    let delta = again.recv_type("server:delta").await;
    let rows: Vec<&str> =
        delta["tables"]["dining_tables"].as_array().expect("rows").iter().filter_map(|r| r["id"].as_str()).collect();
    for id in first[5..].iter().chain(&later) {
        assert!(rows.contains(&id.as_str()), "{id} is missing from the resumed delta: {delta}");
    }
    for id in &first[..5] {
        assert!(!rows.contains(&id.as_str()), "{id} was delivered before the cursor: {delta}");
    }
}

#[tokio::test]
async fn a_lost_notification_only_delays_delivery_from_the_log() {
    let database = TestDatabase::new();
    let (datas, servers) = nodes(&database, 2).await;
    let branch = datas[0].scenario.branch;
    let (mut ws, snapshot) = WsClient::hello(&servers[1].ws_url(), branch).await;
    let after = snapshot["modules"]["pos"]["version"].as_u64().expect("a version");
    // Kill every listening connection: notifications sent meanwhile are lost for good.
    let admin = database.url.clone();
    let killed = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("connect");
        let sql = "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1";
        client.query_one(sql, &[&mishkah_store_postgres::listen::APPLICATION_NAME]).expect("terminate").get::<_, i64>(0)
    })
    .await
    .expect("kill the listeners");
    assert!(killed >= 2, "each node listens ({killed} listening connections)");
    let ids: Vec<String> = (0..5).map(|i| format!("Q-{i:02}")).collect();
    for id in &ids {
        write(&servers[0], branch, id).await;
    }
    let got = collect(&mut ws, after, &ids, Duration::from_secs(15)).await;
    assert_eq!(got.len(), ids.len());
    let _: Value = json!(null);
}

#[tokio::test]
async fn readiness_says_whether_the_node_reaches_its_database() {
    let database = TestDatabase::new();
    let (_datas, mut servers) = nodes(&database, 2).await;
    let client = reqwest::Client::new();
    // A node stops cleanly, its connections closed off the async runtime.
    let status = servers.pop().expect("a node").stop();
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
    let ready = client.get(servers[0].url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    drop(database);
    let ready = client.get(servers[0].url("/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status().as_u16(), 503, "the database is gone");
    let body: Value = ready.json().await.expect("json");
    assert!(body["store"].as_str().is_some_and(|s| s.starts_with("unreachable")), "{body}");
    let health: Value =
        client.get(servers[0].url("/healthz")).send().await.expect("healthz").json().await.expect("json");
    assert_eq!(health["status"], "degraded", "{health}");
}

#[tokio::test]
async fn nodes_starting_together_seed_a_new_module_once() {
    async fn head(server: &TestServer, branch: &str) -> u64 {
        let events = common::get_json(&server.module_url(branch, "/events?limit=1")).await;
        events["lastSequence"].as_u64().expect("a sequence")
    }
    let alone = TestDatabase::new();
    let (datas, servers) = nodes(&alone, 1).await;
    let branch = datas[0].scenario.branch;
    let seeded_once = head(&servers[0], branch).await;
    assert!(seeded_once > 0, "the seed is logged");

    let together = TestDatabase::new();
    let datas: Vec<DataCopy> = (0..3).map(|_| DataCopy::new()).collect();
    for d in &datas {
        let _ = std::fs::remove_file(d.path().join(".test-store"));
    }
    let args = ["--store", together.url.as_str()];
    let starts = datas.iter().map(|d| TestServer::start_with(d.path(), &args));
    let servers = futures_util::future::join_all(starts).await;
    let urls: Vec<String> = servers.iter().map(TestServer::ws_url).collect();
    futures_util::future::join_all(urls.iter().map(|url| WsClient::hello(url, branch))).await;
    // Every node comes to the one seed's head and never past it (seeded twice, it would). That a
    // node serves a module another seeds only once the seed is whole is the store's own test
    // (`store-postgres/tests/seeding.rs`).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    for server in &servers {
        loop {
            let at = head(server, branch).await;
            assert!(at <= seeded_once, "seeded once, not once per node: {at} > {seeded_once}");
            if at == seeded_once {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "the seed never completed: head {at} of {seeded_once}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_branch_one_node_created_exists_for_every_node() {
    use common::attack::{call, token, SECRET};
    let database = TestDatabase::new();
    let (_datas, servers) = started(&database, 2, &["--auth", "required", "--jwt-secret", SECRET], false).await;
    let kitchen = token(json!({"sub": "k1", "role": "kitchen"}));
    let url = |server: &TestServer| server.url("/api/branches/new-shop/modules/pos/tables/order_header");
    let (status, _) = call(reqwest::Method::GET, &url(&servers[1]), Some(&kitchen), None, Value::Null).await;
    assert_eq!(status, 404, "no such branch yet");
    // A till provisioned for the new branch creates it on the first node...
    let till = token(json!({"sub": "till-9", "role": "cashier", "branches": ["new-shop"]}));
    let mut ws = WsClient::connect(&format!("{}?token={till}", servers[0].ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": "new-shop"})).await;
    ws.recv_type("server:snapshot").await;
    // ...and the other node, whose data directory never saw it, serves it.
    let (status, body) = call(reqwest::Method::GET, &url(&servers[1]), Some(&kitchen), None, Value::Null).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_key_kept_in_the_store_is_accepted_by_every_node_and_revoked_on_every_node() {
    use common::attack::SECRET;
    let database = TestDatabase::new();
    let mut servers = Vec::new();
    let mut datas = Vec::new();
    for _ in 0..2 {
        let data = DataCopy::new();
        // The servers and `mishkah keys` both take the store from here.
        std::fs::write(data.path().join(".test-store"), &database.url).expect("store file");
        let args = ["--auth", "required", "--jwt-secret", SECRET];
        servers.push(TestServer::start_with(data.path(), &args).await);
        datas.push(data);
    }
    // Created after the nodes started, through the first node's data directory alone.
    let key = common::keys_cli(datas[0].path(), &["create", "--name", "printer", "--role", "admin"]);
    assert!(!datas[1].path().join("security/keys.json").exists(), "no file carries it to the other node");
    let branch = datas[0].scenario.branch;
    let status = |server: &TestServer| {
        let url = server.module_url(branch, "/tables/menu_items");
        let key = key.clone();
        async move {
            let r = reqwest::Client::new().get(url).header("x-api-key", key).send().await.expect("request");
            r.status().as_u16()
        }
    };
    let within = |want: u16| {
        let servers = &servers;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = futures_util::future::join_all(servers.iter().map(status)).await;
                if got.iter().all(|s| *s == want) || tokio::time::Instant::now() > deadline {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(within(200).await, [200, 200], "every node accepts the key");
    common::keys_cli(datas[1].path(), &["revoke", "--name", "printer"]);
    assert_eq!(within(401).await, [401, 401], "every node refuses it once revoked");
    let listed = common::keys_cli(datas[0].path(), &["list"]);
    assert!(listed.contains("printer") && listed.contains("revoked"), "{listed}");
}

/// `--max-new-branches` bounds the branches created on demand across every node of the store:
/// a node that created none still refuses one more once the others reached the cap.
#[tokio::test]
async fn the_branch_cap_counts_the_branches_every_node_created() {
    let database = TestDatabase::new();
    let (_datas, servers) = started(&database, 2, &["--max-new-branches", "2"], false).await;
    let open = |server: &TestServer, branch: &str| {
        let url = server.url(&format!("/api/branches/{branch}/modules/pos/tables/dining_tables"));
        async move {
            let r = reqwest::get(&url).await.expect("GET");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default())
        }
    };
    for branch in ["shop-1", "shop-2"] {
        let (status, body) = open(&servers[0], branch).await;
        assert_eq!(status, 200, "{branch}: {body}");
    }
    let (status, body) = open(&servers[1], "shop-3").await;
    assert_eq!((status, body["error"].as_str()), (503, Some("branch-limit-reached")), "{body}");
    // What exists stays open to every node.
    let (status, body) = open(&servers[1], "shop-2").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_transaction_committed_on_one_node_reaches_another_nodes_clients_whole() {
    let database = TestDatabase::new();
    let (datas, servers) = nodes(&database, 2).await;
    let branch = datas[0].scenario.branch;
    let mut compact = WsClient::connect(&servers[1].ws_url()).await;
    compact
        .send(json!({"type": "client:hello", "branchId": branch, "requestSnapshot": false, "frames": "compact"}))
        .await;
    compact.recv_type("server:log").await;
    // Longer than a frame holds (64 changes) unless it is one transaction.
    let writes: Vec<Value> = (0..150)
        .map(|i| json!({"action": "insert", "table": "dining_tables", "record": dining_table(&format!("X-{i}"), "tx")}))
        .collect();
    let (status, ack) =
        common::post_json(&servers[0].module_url(branch, "/transactions"), json!({"writes": writes})).await;
    assert_eq!(status, 200, "{ack}");
    let frames: Vec<Value> =
        compact.drain(Duration::from_secs(3)).await.into_iter().filter(|f| f["type"] == "server:events").collect();
    assert_eq!(frames.len(), 1, "one frame: {} frames", frames.len());
    let changes = frames[0]["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.len(), 150);
    assert!(changes.iter().all(|c| c["txn"] == ack["transactionId"]), "{:?}", changes.first());
}
