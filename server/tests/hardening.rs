//! Attacks and operators' mistakes against the real binary (#24): each test is the attack script's
//! equivalent, and each fails on a server without the defence it names.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "hardening-test-secret-of-some-length";

fn token(claims: Value) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

/// Anyone signed in reads everything and writes orders; only admins write dining tables.
fn rules() -> Value {
    json!({"modules": {"pos": {"tables": {
        "dining_tables": {"list": "", "view": "", "create": "@auth.role = \"admin\"", "update": "@auth.role = \"admin\"", "delete": null},
        "*": {"list": "", "view": "", "create": "", "update": "", "delete": null}}}}})
}

async fn call(method: Method, url: &str, token: Option<&str>, client: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(client) = client {
        req = req.header("mishkah-client", client);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn stored(server: &TestServer, branch: &str, table: &str, id: &str, token: Option<&str>) -> Option<Value> {
    let (status, body) =
        call(Method::GET, &server.module_url(branch, &format!("/tables/{table}/{id}")), token, None, Value::Null).await;
    (status == 200).then_some(body)
}

async fn head(server: &TestServer, branch: &str, token: Option<&str>) -> u64 {
    let (_, body) =
        call(Method::GET, &server.module_url(branch, "/events?after=0&limit=1"), token, None, Value::Null).await;
    body["lastSequence"].as_u64().unwrap_or_else(|| panic!("no head in {body}"))
}

fn publish(table: &str, record: Value, mutation_id: &str) -> Value {
    json!({"type": "client:publish", "moduleId": "pos", "table": table, "action": "insert", "record": record,
           "requestId": mutation_id, "mutationId": mutation_id, "includeRecord": true})
}

async fn reply_to(ws: &mut WsClient, mutation_id: &str) -> Value {
    ws.recv_where("an ack or error", |f| {
        matches!(f["type"].as_str(), Some("server:ack" | "server:error")) && f["mutationId"] == mutation_id
    })
    .await
}

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

/// A socket from `source` (any 127.x address reaches the server) that sends `bytes` and then
/// nothing.
async fn stalled_socket(port: u16, source: &str, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    let _ = stream.write_all(bytes).await;
    stream
}

/// Whether the server closes `stream` within `within` (end of stream or a reset; an answer
/// before it, such as a 408, is read past).
async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn port_of(server: &TestServer) -> u16 {
    server.url("").rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn half_sent_requests_are_closed_and_cannot_take_every_socket() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--header-timeout", "2", "--body-timeout", "1", "--max-sockets-per-ip", "10"],
    )
    .await;
    let port = port_of(&server);
    let half = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(stalled_socket(port, "127.0.0.1", half).await);
    }
    // Over the address's cap: closed at once.
    let mut extra = stalled_socket(port, "127.0.0.1", half).await;
    assert!(closed_by_server(&mut extra, Duration::from_secs(1)).await, "a socket over the address's cap was kept");
    // Another address is served meanwhile.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let r = other.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The half-sent requests are closed once the header timeout passes, and the address is served again.
    for socket in &mut held {
        assert!(closed_by_server(socket, Duration::from_secs(5)).await, "a half-sent request was kept open");
    }
    assert_eq!(get_status(&server.url("/healthz")).await.0, 200);

    // A body that stops halfway ends its request instead of holding the socket.
    let partial = b"POST /api/branches/x/modules/pos/tables/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"record\":";
    let mut slow = stalled_socket(port, "127.0.0.1", partial).await;
    assert!(closed_by_server(&mut slow, Duration::from_secs(5)).await, "a stalled body held its socket");

    // A kept-alive connection left idle is closed too.
    let mut idle = stalled_socket(port, "127.0.0.1", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_by_server(&mut idle, Duration::from_secs(5)).await, "an idle keep-alive connection was kept");
}

#[tokio::test]
async fn the_total_socket_cap_closes_what_is_over_it_and_frees_up() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--header-timeout", "2", "--max-connections", "5", "--max-sockets-per-ip", "0"],
    )
    .await;
    let port = port_of(&server);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(stalled_socket(port, "127.0.0.1", b"GET / HTTP/1.1\r\n").await);
    }
    let mut sixth = stalled_socket(port, "127.0.0.3", b"GET / HTTP/1.1\r\n").await;
    assert!(closed_by_server(&mut sixth, Duration::from_secs(1)).await, "a socket over the total cap was kept");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        // Served again once the stalled ones time out.
        match reqwest::get(server.url("/metrics")).await {
            Ok(r) if r.status() == 200 => break r.text().await.unwrap(),
            _ if tokio::time::Instant::now() > deadline => panic!("never served again"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert!(metrics.lines().any(|l| l.starts_with("mishkah_refused_sockets_total") && !l.ends_with(" 0")), "{metrics}");
}

fn open_files(server: &TestServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map(|d| d.count()).unwrap_or(0)
}

fn branch_dirs(data: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("branches"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn reading_a_branch_that_does_not_exist_creates_it_only_for_who_may() {
    let data = DataCopy::new();
    write_json(&data.path().join("security/rules.json"), &rules());
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let before = branch_dirs(data.path());
    let kitchen = token(json!({"sub": "k1", "role": "kitchen"}));
    let files = open_files(&server);
    for i in 0..40 {
        let url = server.url(&format!("/api/branches/spam-{i}/modules/pos/tables/order_header"));
        let (status, body) = call(Method::GET, &url, Some(&kitchen), None, Value::Null).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("branch-not-found")), "{body}");
    }
    let mut ws = WsClient::connect(&format!("{}?token={kitchen}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": "spam-ws"})).await;
    let reply = ws.recv_where("an error", |f| f["type"] == "server:error").await;
    assert_eq!(reply["code"], "branch-not-found", "{reply}");
    assert_eq!(branch_dirs(data.path()), before, "a read created a branch");
    assert!(open_files(&server) <= files + 8, "reads held files open: {files} → {}", open_files(&server));

    // A till provisioned for a new branch creates it with its first read (its hello), seeded.
    let till = token(json!({"sub": "till-9", "role": "cashier", "branches": ["new-shop"]}));
    let mut ws = WsClient::connect(&format!("{}?token={till}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": "new-shop"})).await;
    ws.recv_type("server:snapshot").await;
    assert!(branch_dirs(data.path()).contains(&"new-shop".to_owned()));
    // ...after which anyone may read it.
    let url = server.url("/api/branches/new-shop/modules/pos/tables/order_header");
    assert_eq!(call(Method::GET, &url, Some(&kitchen), None, Value::Null).await.0, 200);

    // One branch has one spelling.
    let admin = token(json!({"sub": "boss", "role": "admin"}));
    let url = server.url("/api/branches/New-Shop/modules/pos/tables/order_header");
    let (status, body) = call(Method::GET, &url, Some(&admin), None, Value::Null).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid-branch")), "{body}");
    assert!(!branch_dirs(data.path()).contains(&"New-Shop".to_owned()));
}

#[tokio::test]
async fn branch_spam_with_auth_off_is_bounded_in_branches_open_modules_and_files() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--max-open-modules", "6", "--max-new-branches", "20", "--idle-close", "1"],
    )
    .await;
    let before = branch_dirs(data.path()).len();
    let files = open_files(&server);
    let mut refused = 0;
    for i in 0..30 {
        let url = server.url(&format!("/api/branches/spam-{i}/modules/pos/tables/dining_tables"));
        let (status, body) = get_status(&url).await;
        match status {
            200 => {}
            503 => {
                assert_eq!(body["error"], "branch-limit-reached", "{body}");
                refused += 1;
            }
            _ => panic!("{status} {body}"),
        }
    }
    // The cap counts every unnamed branch directory, those the data directory came with too.
    let created = branch_dirs(data.path()).len() - before;
    assert_eq!(created + refused, 30);
    assert!(created <= 20 && refused >= 10, "created {created}, refused {refused}");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let open: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mishkah_modules_open "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(open <= 6, "{open} modules open");
    // Each open module costs a few files (database, log, readers); closed ones cost none.
    assert!(open_files(&server) <= files + 6 * 8, "files: {files} → {}", open_files(&server));
    // Idle ones are closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == "mishkah_modules_open 0") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "idle modules stay open: {metrics}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A closed module reopens on demand, with what it had.
    let url = server.url("/api/branches/spam-0/modules/pos/tables/dining_tables");
    assert_eq!(get_status(&url).await.0, 200);
}

fn memory_kib(server: &TestServer, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

async fn counter(server: &TestServer, name: &str) -> u64 {
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn clients_that_never_read_a_large_snapshot_cost_bounded_memory_and_are_closed() {
    const ROWS: usize = 3_000;
    const NOTE: usize = 10_000;
    const CLIENTS: usize = 6;
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start_with(
        data.path(),
        &["--send-timeout", "2", "--min-send-rate", "100000000", "--max-snapshots", "2", "--max-record-bytes", "65536"],
    )
    .await;
    // ~30 MB of rows.
    for chunk in 0..ROWS / 100 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                let id = format!("big-{}", chunk * 100 + i);
                json!({"table": "dining_tables", "record": {"id": id, "name": id, "seats": 2, "note": "n".repeat(NOTE)}})
            })
            .collect();
        let (status, body) = post_json(&server.module_url(b, "/events/batch"), json!({"events": events})).await;
        assert!(status < 300, "{status} {body}");
    }
    let snapshot_mib = (ROWS * NOTE) as u64 / (1 << 20);
    // The peak from here on: writing 5 to clear_refs resets the process's high-water mark.
    let _ = std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5");
    let before = memory_kib(&server, "VmRSS:");

    // Clients that say hello and never read what they asked for.
    let mut lazy = Vec::new();
    for _ in 0..CLIENTS {
        let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
        use futures_util::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            json!({"type": "client:hello", "branchId": b}).to_string().into(),
        ))
        .await
        .unwrap();
        lazy.push(ws);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while counter(&server, "mishkah_slow_clients_closed_total").await < CLIENTS as u64 {
        assert!(tokio::time::Instant::now() < deadline, "clients that never read were kept");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let peak_mib = memory_kib(&server, "VmHWM:").saturating_sub(before) / 1024;
    eprintln!("snapshot {snapshot_mib} MiB, {CLIENTS} never-reading clients, peak growth {peak_mib} MiB");
    // Two snapshots in flight at a time, not one per client.
    assert!(
        peak_mib < snapshot_mib * 2 * 6,
        "peak grew {peak_mib} MiB for a {snapshot_mib} MiB snapshot ({CLIENTS} clients)"
    );
    drop(lazy);
    // A reading client still gets its snapshot, whole.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(server.ws_url(), Some(config), false).await.unwrap();
    {
        use futures_util::{SinkExt, StreamExt};
        let hello = json!({"type": "client:hello", "branchId": b}).to_string();
        ws.send(tokio_tungstenite::tungstenite::Message::Text(hello.into())).await.unwrap();
        let snapshot = loop {
            let frame = tokio::time::timeout(WAIT, ws.next()).await.unwrap().unwrap().unwrap();
            let frame: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if frame["type"] == "server:snapshot" {
                break frame;
            }
        };
        let rows = snapshot["modules"]["pos"]["tables"]["dining_tables"].as_array().map_or(0, Vec::len);
        assert!(rows >= ROWS, "{rows} rows in the snapshot");
    }

    // A record larger than the cap is refused whole, on every path.
    let huge = json!({"record": {"id": "T-huge", "name": "x", "seats": 1, "note": "n".repeat(70_000)}});
    let (status, body) = post_json(&server.module_url(b, "/tables/dining_tables"), huge).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("record-too-large")), "{body}");
    assert_eq!(get_status(&server.module_url(b, "/tables/dining_tables/T-huge")).await.0, 404);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limits_and_nobody_else_is_believed() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--trusted-proxies", "127.0.0.1", "--rate-limit", "3", "--max-sockets-per-ip", "2"],
    )
    .await;
    let from = |source: &str| {
        reqwest::Client::builder().local_address(source.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
    };
    let get = |client: reqwest::Client, forwarded_for: &'static str| {
        let url = server.url("/api/modules");
        async move { client.get(url).header("x-forwarded-for", forwarded_for).send().await.unwrap().status().as_u16() }
    };
    // Through the proxy: two clients, a bucket each.
    let proxy = from("127.0.0.1");
    for _ in 0..3 {
        assert_eq!(get(proxy.clone(), "203.0.113.1").await, 200);
        assert_eq!(get(proxy.clone(), "203.0.113.2").await, 200);
    }
    assert_eq!(get(proxy.clone(), "203.0.113.1").await, 429, "the first client's bucket is empty");
    // Not a proxy: its forwarding header is ignored, whatever it claims.
    let direct = from("127.0.0.5");
    let mut statuses = Vec::new();
    for claimed in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"] {
        statuses.push(get(direct.clone(), claimed).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429], "a spoofed X-Forwarded-For bought a new bucket");
    // The proxy's sockets are not capped per address: it carries many clients.
    let port = port_of(&server);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled_socket(port, "127.0.0.1", b"GET /healthz HTTP/1.1\r\n").await);
    }
    for socket in &mut held {
        assert!(!closed_by_server(socket, Duration::from_millis(300)).await, "a proxy's socket was refused");
    }
}

#[tokio::test]
async fn anonymous_sessions_do_not_take_the_room_of_signed_in_ones() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--auth", "required", "--jwt-secret", SECRET, "--max-connections-per-ip", "2"],
    )
    .await;
    let mut anonymous = Vec::new();
    for _ in 0..2 {
        anonymous.push(tokio_tungstenite::connect_async(server.ws_url()).await.unwrap());
    }
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(refused.is_err(), "a third anonymous session from the address was accepted");
    let till = token(json!({"sub": "till-1", "role": "cashier"}));
    let mut signed_in = WsClient::connect(&format!("{}?token={till}", server.ws_url())).await;
    signed_in.send(json!({"type": "ping"})).await;
    signed_in.recv_type("pong").await;
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
async fn the_server_pings_and_closes_a_peer_that_stopped_answering() {
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start_with(data.path(), &["--ping-interval", "1"]).await;
    let (mut alive, _) = WsClient::hello(&server.ws_url(), b).await;
    let (mut silent, _) = WsClient::hello(&server.ws_url(), b).await;
    // The live client reads (and so answers pings); the silent one reads nothing for 5 s.
    let listening = tokio::spawn(async move {
        let _ = alive.drain(Duration::from_secs(5)).await;
        alive
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut alive = listening.await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            use futures_util::StreamExt;
            match silent.ws.next().await {
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a peer silent for three pings was kept");
    alive.send(json!({"type": "ping"})).await;
    alive.recv_type("pong").await;
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
async fn rules_in_force_with_auth_off_are_warned_about_at_startup() {
    let data = DataCopy::new();
    write_json(&data.path().join("security/rules.json"), &rules());
    let server = TestServer::start(data.path()).await;
    assert!(server.log().contains("security rules are in force with --auth off"), "{}", server.log());
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
