//! Attacks on what no client may exhaust (#24): sockets, branches, open modules, memory,
//! forwarded addresses, silent peers. Each test is an attack script's equivalent on the real
//! binary and fails without the defence it names.

mod common;

use std::time::Duration;

use common::attack::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn half_sent_requests_are_closed_and_cannot_take_every_socket() {
    let data = DataCopy::new();
    let server = TestServer::start_with(
        data.path(),
        &["--header-timeout", "4", "--body-timeout", "1", "--max-sockets-per-ip", "10"],
    )
    .await;
    let port = port_of(&server);
    let half = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(stalled_socket(port, "127.0.0.1", half).await);
    }
    // Over the address's cap: closed at once — well before the header timeout would close it
    // (the margin is for a loaded machine: the other tests of this binary run beside it).
    let mut extra = stalled_socket(port, "127.0.0.1", half).await;
    assert!(
        closed_by_server(&mut extra, Duration::from_millis(2500)).await,
        "a socket over the address's cap was kept"
    );
    // Another address is served meanwhile.
    let other =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let r = other.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The half-sent requests are closed once the header timeout passes, and the address is served again.
    for socket in &mut held {
        assert!(closed_by_server(socket, Duration::from_secs(7)).await, "a half-sent request was kept open");
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
        &["--header-timeout", "4", "--max-connections", "5", "--max-sockets-per-ip", "0"],
    )
    .await;
    let port = port_of(&server);
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(stalled_socket(port, "127.0.0.1", b"GET / HTTP/1.1\r\n").await);
    }
    let mut sixth = stalled_socket(port, "127.0.0.3", b"GET / HTTP/1.1\r\n").await;
    // Closed at once — well before the header timeout would close it (the margin is for a loaded
    // machine: the other tests of this binary run beside it).
    assert!(closed_by_server(&mut sixth, Duration::from_millis(2500)).await, "a socket over the total cap was kept");
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

/// A client pipelining writes without end is read only as fast as its writes are answered: what
/// the server holds for it is bounded by the writes in flight, not by what it sent.
#[tokio::test]
async fn a_client_pipelining_without_end_is_read_as_fast_as_it_is_answered() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const TRANSACTIONS: usize = 600;
    const NOTE: usize = 16 * 1024;
    let data = DataCopy::new();
    let b = data.scenario.branch;
    let server = TestServer::start(data.path()).await;
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.expect("connect");
    let (mut tx, mut rx) = ws.split();
    tx.send(Message::Text(json!({"type": "client:hello", "branchId": b}).to_string().into())).await.unwrap();
    let frames: Vec<String> = (0..TRANSACTIONS)
        .map(|t| {
            let writes: Vec<Value> = (0..10)
                .map(|w| {
                    let id = format!("pipe-{t}-{w}");
                    json!({"action": "insert", "table": "dining_tables",
                           "record": {"id": id, "name": id, "seats": 2, "note": "n".repeat(NOTE)}})
                })
                .collect();
            json!({"type": "client:transaction", "moduleId": "pos", "requestId": t, "writes": writes}).to_string()
        })
        .collect();
    let sent_mib = frames.iter().map(String::len).sum::<usize>() as u64 >> 20;
    let _ = std::fs::write(format!("/proc/{}/clear_refs", server.pid()), "5");
    let before = memory_kib(&server, "VmRSS:");
    let sender = tokio::spawn(async move {
        for frame in frames {
            tx.send(Message::Text(frame.into())).await.expect("send");
        }
        tx
    });
    let mut answered = 0;
    while answered < TRANSACTIONS {
        let frame = tokio::time::timeout(Duration::from_secs(60), rx.next()).await.expect("an answer in time");
        let Some(Ok(Message::Text(text))) = frame else { continue };
        let f: Value = serde_json::from_str(&text).expect("JSON");
        match f["type"].as_str() {
            Some("server:transaction") => {
                assert_eq!(f["requestId"], json!(answered), "answers in order");
                answered += 1;
            }
            Some("server:error") => panic!("{f}"),
            _ => {}
        }
    }
    drop(sender.await);
    let peak_mib = memory_kib(&server, "VmHWM:").saturating_sub(before) / 1024;
    eprintln!("pipelined {sent_mib} MiB of transactions: peak growth {peak_mib} MiB");
    assert!(peak_mib < sent_mib / 2, "the server held {peak_mib} MiB for {sent_mib} MiB sent");
}
