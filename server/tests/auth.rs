//! Identities against the real binary: `--auth required` refuses REST requests and WebSocket
//! sessions without a valid token, each refusal with its code; `mishkah token` mints one it
//! accepts; `--auth off` keeps the original's open door.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const SECRET: &str = "test-secret-of-some-length";

fn mint(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["token", "--jwt-secret", SECRET])
        .args(args)
        .output()
        .expect("run mishkah token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn signed_with(secret: &str, claims: Value) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn unsigned(claims: Value) -> String {
    use base64::Engine;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
}

async fn get_with(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn with_auth_required_every_api_request_needs_a_valid_token() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    let (status, _) = get_with(&server.url("/healthz"), None).await;
    assert_eq!(status, 200, "/healthz stays open");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let cases = [
        (None, "unauthenticated"),
        (Some("not-a-token".to_owned()), "invalid-token"),
        (Some(signed_with("another-secret", json!({"sub": "x", "role": "admin"}))), "invalid-token"),
        (Some(unsigned(json!({"sub": "x", "role": "admin"}))), "invalid-token"),
        (Some(signed_with(SECRET, json!({"sub": "x", "exp": now - 30}))), "token-expired"),
        (Some(signed_with(SECRET, json!({"role": "admin"}))), "invalid-token"),
    ];
    for (token, code) in &cases {
        let (status, body) = get_with(&url, token.as_deref()).await;
        assert_eq!((status, body["error"].as_str()), (401, Some(*code)), "{token:?} → {body}");
    }
    let token = mint(&["--sub", "cashier-1", "--role", "cashier", "--ttl", "5m", "--claim", r#"branches=["demo"]"#]);
    let (status, body) = get_with(&url, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["rows"].is_array());
    let log = server.log();
    assert!(log.contains("auth required"), "{log}");
}

#[tokio::test]
async fn with_auth_required_a_websocket_session_authenticates_by_header_query_or_hello() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let token = mint(&["--sub", "kds-1", "--role", "kitchen"]);

    // No token yet: only a hello with one is heard.
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:query", "table": "dining_tables", "requestId": "q"})).await;
    let refused = ws.recv_type("server:error").await;
    assert_eq!((refused["code"].clone(), refused["requestId"].clone()), (json!("unauthenticated"), json!("q")));
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "token": "garbage", "requestId": "h0"})).await;
    let bad = ws.recv_type("server:error").await;
    assert_eq!(bad["code"], json!("invalid-token"));
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "token": token, "requestId": "h1"})).await;
    let snapshot = ws.recv_type("server:snapshot").await;
    assert!(snapshot["modules"].is_object());

    // On the upgrade: `?token=`.
    let mut by_query = WsClient::connect(&format!("{}?token={token}", server.ws_url())).await;
    by_query.send(json!({"type": "client:hello", "branchId": s.branch})).await;
    by_query.recv_type("server:snapshot").await;

    // A bad credential on the upgrade is refused before the socket opens.
    let refused = tokio_tungstenite::connect_async(format!("{}?token=garbage", server.ws_url())).await;
    assert!(refused.is_err(), "a bad token on the upgrade is a 401");

    // Silence without a token: closed after a few seconds, with the reason.
    let mut silent = WsClient::connect(&server.ws_url()).await;
    let frames = silent.drain(Duration::from_secs(7)).await;
    assert!(frames.iter().any(|f| f["type"] == "server:error" && f["code"] == "unauthenticated"), "{frames:?}");
}

#[tokio::test]
async fn with_auth_off_the_server_stays_open_and_says_so_loudly() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let (status, _) = get_with(&server.module_url(s.branch, "/tables/dining_tables"), None).await;
    assert_eq!(status, 200);
    assert!(server.log().contains("AUTH IS OFF"));
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--port", "0", "--auth", "required"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--jwt-secret")
            || String::from_utf8_lossy(&out.stdout).contains("--jwt-secret")
    );
}
