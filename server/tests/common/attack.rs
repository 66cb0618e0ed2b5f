//! What the attack tests (`hardening_*.rs`) share: identities signed with one secret, calls as
//! them, raw sockets that stall, and what the server process holds.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::{TestServer, WsClient};

pub const SECRET: &str = "hardening-test-secret-of-some-length";

pub fn token(claims: Value) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

/// Anyone signed in reads everything and writes orders; only admins write dining tables.
pub fn rules() -> Value {
    json!({"modules": {"pos": {"tables": {
        "dining_tables": {"list": "", "view": "", "create": "@auth.role = \"admin\"", "update": "@auth.role = \"admin\"", "delete": null},
        "*": {"list": "", "view": "", "create": "", "update": "", "delete": null}}}}})
}

pub async fn call(method: Method, url: &str, token: Option<&str>, client: Option<&str>, body: Value) -> (u16, Value) {
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

pub async fn stored(server: &TestServer, branch: &str, table: &str, id: &str, token: Option<&str>) -> Option<Value> {
    let (status, body) =
        call(Method::GET, &server.module_url(branch, &format!("/tables/{table}/{id}")), token, None, Value::Null).await;
    (status == 200).then_some(body)
}

pub async fn head(server: &TestServer, branch: &str, token: Option<&str>) -> u64 {
    let (_, body) =
        call(Method::GET, &server.module_url(branch, "/events?after=0&limit=1"), token, None, Value::Null).await;
    body["lastSequence"].as_u64().unwrap_or_else(|| panic!("no head in {body}"))
}

pub fn publish(table: &str, record: Value, mutation_id: &str) -> Value {
    json!({"type": "client:publish", "moduleId": "pos", "table": table, "action": "insert", "record": record,
           "requestId": mutation_id, "mutationId": mutation_id, "includeRecord": true})
}

pub async fn reply_to(ws: &mut WsClient, mutation_id: &str) -> Value {
    ws.recv_where("an ack or error", |f| {
        matches!(f["type"].as_str(), Some("server:ack" | "server:error")) && f["mutationId"] == mutation_id
    })
    .await
}

/// A socket from `source` (any 127.x address reaches the server) that sends `bytes` and then
/// nothing.
pub async fn stalled_socket(port: u16, source: &str, bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.unwrap();
    let _ = stream.write_all(bytes).await;
    stream
}

/// Whether the server closes `stream` within `within` (end of stream or a reset; an answer
/// before it, such as a 408, is read past).
pub async fn closed_by_server(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
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

pub fn port_of(server: &TestServer) -> u16 {
    server.url("").rsplit(':').next().unwrap().parse().unwrap()
}

pub fn open_files(server: &TestServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid())).map(|d| d.count()).unwrap_or(0)
}

pub fn branch_dirs(data: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("branches"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

pub fn memory_kib(server: &TestServer, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

pub async fn counter(server: &TestServer, name: &str) -> u64 {
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
        .map_or(0, |v| v as u64)
}
