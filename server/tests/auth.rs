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
    let claim = format!("branches=[\"{}\"]", s.branch);
    let token = mint(&["--sub", "cashier-1", "--role", "cashier", "--ttl", "5m", "--claim", &claim]);
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

/// A key pair made for these tests only (`openssl genpkey -algorithm ed25519`).
const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIKvJXTR84tF8ipxlfEx8ybOdhvV1qpF1cgJqvdoDFXLw
-----END PRIVATE KEY-----
";
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA6gYK8iv1DomTpBvCK0uxDXJvvXlNByR0I5N8fwNd9pg=
-----END PUBLIC KEY-----
";
/// An EC P-256 key pair made for these tests only.
const P256_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgymORIhCvS8Eo1hUr
t2xxR3SqHoEdM/znVmpomA1StVmhRANCAATjKqcvjfVoockbjWdfkDDPJeC5c3Bv
fzL2D/fBCaXawdQrWYrXwn3IIODfknSUX+ENrjOD0dKMD2EYsCeRUFqa
-----END PRIVATE KEY-----
";

async fn get_with_key(url: &str, key: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(url).header("x-api-key", key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The code of the first error frame a session answers a hello carrying `token` with.
async fn hello_refusal(server: &TestServer, branch: &str, token: &str) -> Value {
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": branch, "token": token, "requestId": "h"})).await;
    let f = ws.recv_where("an answer to the hello", |f| f["requestId"] == "h" || f["type"] == "server:snapshot").await;
    f["code"].clone()
}

#[tokio::test]
async fn every_bad_credential_is_refused_with_its_code_on_rest_and_websocket() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let printer = common::keys_cli(data.path(), &["create", "--name", "printer", "--role", "service"]);
    let revoked = common::keys_cli(data.path(), &["create", "--name", "old-tablet", "--role", "cashier"]);
    let public_key = data.path().join("jwt.pub");
    std::fs::write(&public_key, ED25519_PUBLIC).unwrap();
    let key_arg = public_key.to_str().unwrap();
    let server = TestServer::start_with(
        data.path(),
        &["--auth", "required", "--jwt-secret", SECRET, "--jwt-public-key", key_arg],
    )
    .await;
    let url = server.module_url(s.branch, "/tables/dining_tables");

    // Good credentials of every kind: HS256, EdDSA, an API key as bearer and as X-API-Key.
    let ed = {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        let key = EncodingKey::from_ed_pem(ED25519_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::EdDSA), &json!({"sub": "idp-user", "role": "cashier"}), &key).unwrap()
    };
    for (what, token) in
        [("HS256", mint(&["--sub", "a", "--role", "cashier"])), ("EdDSA", ed), ("key", printer.clone())]
    {
        let (status, body) = get_with(&url, Some(&token)).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    assert_eq!(get_with_key(&url, &printer).await.0, 200);

    // Revoked while the server runs: refused from the next use.
    common::keys_cli(data.path(), &["revoke", "--name", "old-tablet"]);
    let listed = common::keys_cli(data.path(), &["list"]);
    assert!(listed.contains("printer") && listed.contains("revoked") && !listed.contains(&printer[3..]), "{listed}");
    if !common::store_args(data.path()).is_empty() {
        // A shared store's keys reach a running server within a second (read on a thread of its
        // own, so that no request waits on the database); a data directory's, at once.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while get_with(&url, Some(&revoked)).await.0 == 200 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let p256 = {
        use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
        // A valid signature with a key the server was not given.
        let key = EncodingKey::from_ec_pem(P256_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::ES256), &json!({"sub": "x"}), &key).unwrap()
    };
    let cases = [
        ("expired", signed_with(SECRET, json!({"sub": "x", "exp": now - 30})), "token-expired"),
        ("malformed", "a.b.c".to_owned(), "invalid-token"),
        ("wrongly signed", signed_with("another-secret", json!({"sub": "x"})), "invalid-token"),
        ("alg: none", unsigned(json!({"sub": "x", "role": "admin"})), "invalid-token"),
        ("an algorithm without a key", p256, "invalid-token"),
        ("revoked", revoked.clone(), "key-revoked"),
        ("unknown key", "mk_not-a-key-this-server-issued".to_owned(), "invalid-token"),
    ];
    for (what, token, code) in &cases {
        let (status, body) = get_with(&url, Some(token)).await;
        assert_eq!((status, body["error"].as_str()), (401, Some(*code)), "REST, {what}: {body}");
        assert_eq!(hello_refusal(&server, s.branch, token).await, json!(code), "WS hello, {what}");
        let upgrade = tokio_tungstenite::connect_async(format!("{}?token={token}", server.ws_url())).await;
        match upgrade {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 401, "WS upgrade, {what}")
            }
            other => panic!("WS upgrade, {what}: expected a 401, got {:?}", other.map(|_| "a socket")),
        }
    }
    let (status, body) = get_with_key(&url, &revoked).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("key-revoked")), "{body}");
}

#[tokio::test]
async fn a_branches_claim_limits_the_branches_an_identity_may_use() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let claim = format!("branches=[\"{}\"]", s.branch);
    let token = mint(&["--sub", "c1", "--role", "cashier", "--claim", &claim]);
    assert_eq!(get_with(&server.module_url(s.branch, "/tables/dining_tables"), Some(&token)).await.0, 200);
    let (status, body) = get_with(&server.module_url(s.other_branch, "/tables/dining_tables"), Some(&token)).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("branch-forbidden")), "{body}");
    let (status, _) =
        get_with(&server.url(&format!("/api/branches/{}", urlencode(s.other_branch))), Some(&token)).await;
    assert_eq!(status, 403);
    assert_eq!(hello_refusal(&server, s.other_branch, &token).await, json!("branch-forbidden"));
    let (mut ws, _) = {
        let mut ws = WsClient::connect(&format!("{}?token={token}", server.ws_url())).await;
        ws.send(json!({"type": "client:hello", "branchId": s.branch})).await;
        let snapshot = ws.recv_type("server:snapshot").await;
        (ws, snapshot)
    };
    ws.send(json!({"type": "subscribe", "topic": format!("sync:{}::pos", s.other_branch)})).await;
    let refused = ws.recv_where("the topic refusal", |f| f["type"] == "error" || f["code"].is_string()).await;
    assert!(refused.to_string().contains("branch-forbidden"), "{refused}");
}

#[tokio::test]
async fn an_expired_session_pauses_until_client_auth_renews_it_then_delivers_what_it_missed() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let writer = mint(&["--sub", "writer", "--role", "admin"]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let short = signed_with(SECRET, json!({"sub": "tablet", "role": "cashier", "exp": now + 2}));
    let mut ws = WsClient::connect(&format!("{}?token={short}", server.ws_url())).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch})).await;
    ws.recv_type("server:snapshot").await;

    let url = server.module_url(s.branch, "/tables/dining_tables");
    let write = |id: &'static str| {
        let (url, writer) = (url.clone(), writer.clone());
        async move {
            let r = reqwest::Client::new()
                .post(&url)
                .bearer_auth(&writer)
                .json(&json!({"record": dining_table(id, id)}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 201);
        }
    };
    write("T-before").await;
    let event = ws.recv_type("server:event").await;
    assert_eq!(event["recordRef"]["id"], "T-before");

    let directive = ws.recv_where("the expiry", |f| f["type"] == "server:directive").await;
    assert_eq!(directive["directive"], "token-expired", "{directive}");
    write("T-while-expired").await;
    let quiet = ws.drain(Duration::from_millis(400)).await;
    assert!(quiet.iter().all(|f| f["type"] != "server:event"), "nothing is delivered after expiry: {quiet:?}");
    ws.send(json!({"type": "client:query", "table": "dining_tables", "requestId": "q"})).await;
    let refused = ws.recv_where("the refusal", |f| f["requestId"] == "q").await;
    assert_eq!(refused["code"], "token-expired");

    let other = mint(&["--sub", "someone-else", "--role", "cashier"]);
    ws.send(json!({"type": "client:auth", "token": other, "requestId": "a0"})).await;
    assert_eq!(ws.recv_where("refusal", |f| f["requestId"] == "a0").await["code"], "identity-changed");
    let renewed = mint(&["--sub", "tablet", "--role", "cashier", "--ttl", "1h"]);
    ws.send(json!({"type": "client:auth", "token": renewed, "requestId": "a1"})).await;
    let ok = ws.recv_where("renewal", |f| f["requestId"] == "a1").await;
    assert_eq!((ok["type"].as_str(), ok["sub"].as_str()), (Some("server:auth"), Some("tablet")), "{ok}");
    let missed = ws.recv_type("server:event").await;
    assert_eq!(missed["recordRef"]["id"], "T-while-expired", "what was queued meanwhile follows");
}

#[tokio::test]
async fn time_claims_must_be_numbers_and_exp_can_be_required() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let url_of = |server: &TestServer| server.module_url(s.branch, "/tables/dining_tables?limit=1");
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    let url = url_of(&server);
    for claims in [
        json!({"sub": "a", "role": "admin", "exp": "2001-01-01"}),
        json!({"sub": "a", "role": "admin", "nbf": "later"}),
    ] {
        let (status, body) = get_with(&url, Some(&signed_with(SECRET, claims.clone()))).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid-token")), "{claims}: {body}");
    }
    let forever = signed_with(SECRET, json!({"sub": "a", "role": "cashier"}));
    assert_eq!(get_with(&url, Some(&forever)).await.0, 200, "without --require-exp a token may not expire");
    assert!(server.log().contains("shorter than 32 bytes"), "a short secret is warned about");
    drop(server);
    let server =
        TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET, "--require-exp"]).await;
    let url = url_of(&server);
    let (status, body) = get_with(&url, Some(&forever)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid-token")), "{body}");
    assert_eq!(get_with(&url, Some(&mint(&["--sub", "a", "--role", "cashier"]))).await.0, 200);
    for args in [["--jwt-secret", "", "--sub", "a"], ["--jwt-secret", SECRET, "--sub", " "]] {
        let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
            .arg("token")
            .args(args)
            .args(["--role", "cashier"])
            .env_remove("MISHKAH_JWT_SECRET")
            .output()
            .unwrap();
        assert!(!out.status.success() && out.stdout.is_empty(), "{args:?}");
    }
}
