//! The real binary under fuzzed input: near-valid frames on an authenticated session and REST
//! requests with random bodies and filters. Nothing may crash the server, answer 5xx or close the
//! connection; afterwards the session still answers and the server is healthy. Bounded by
//! `MISHKAH_FUZZ_SECS` (`scripts/fuzz`); a short round under `cargo test`.

mod common;

use std::time::Duration;

use common::*;
use mishkah_test_support::fuzz::{fuzz, json_value, near_valid_frame};
use proptest::prelude::*;
use serde_json::json;

const SECRET: &str = "fuzz-secret-of-some-length";

fn token() -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(
        &Header::default(),
        &json!({"sub": "fuzzer", "role": "cashier"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

#[test]
fn fuzzed_frames_and_requests_never_crash_the_server_or_close_the_session() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = runtime.block_on(TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]));
    let ws = runtime.block_on(async {
        let mut ws = WsClient::connect(&format!("{}?token={}", server.ws_url(), token())).await;
        ws.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
        ws.recv_type("server:log").await;
        ws
    });
    let ws = tokio::sync::Mutex::new(ws);

    fuzz("frames on a live session", near_valid_frame(), |mut frame| {
        // Keep the session on its branch: a fuzzed hello would move it elsewhere.
        if frame["type"] == "client:hello" {
            frame["branchId"] = json!(s.branch);
        }
        runtime.block_on(async {
            let mut ws = ws.lock().await;
            ws.send(frame.clone()).await;
            // Whatever comes back, the socket must still be open (next() panics on a broken one).
            let _ = ws.drain(Duration::from_millis(2)).await;
        });
        Ok(())
    });

    let client = reqwest::Client::new();
    let paths = prop::sample::select(vec![
        "/tables/order_header",
        "/tables/dining_tables",
        "/tables/nope",
        "/tables/dining_tables/count",
        "/tables/dining_tables/aggregate",
        "/tables/menu_items/search",
        "/save",
        "/sequences",
        "/events/batch",
        "/events",
        "",
    ]);
    let methods = prop::sample::select(vec!["GET", "POST", "PATCH", "PUT", "DELETE"]);
    let query = prop_oneof!["\\PC{0,20}", Just("filter=a%20%3D".to_owned()), Just("limit=-1&sort=%2Bx".to_owned())];
    fuzz("REST requests", (methods, paths, query, json_value()), |(method, path, query, body)| {
        let url = format!("{}?{}", server.module_url(s.branch, path), query.replace(['#', ' '], ""));
        let status = runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let r = client.request(method, &url).bearer_auth(token()).json(&body).send().await.unwrap();
            r.status().as_u16()
        });
        prop_assert!(status < 500, "{} {} {} → {}", method, url, body, status);
        Ok(())
    });

    runtime.block_on(async {
        let mut ws = ws.lock().await;
        ws.send(json!({"type": "ping"})).await;
        ws.recv_type("pong").await;
        assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
    });
}
