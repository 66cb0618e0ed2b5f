//! Limits against the real binary: a token bucket per client on REST requests and WebSocket
//! messages (429 with `Retry-After`, or a `rate-limited` frame; the connection stays usable), a
//! cap on connections per address, and CORS origins.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn over_a_limit_a_client_is_told_when_to_come_back_and_stays_usable() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let args = ["--rate-limit", "5", "--max-connections-per-ip", "3", "--cors-origins", "http://pos.example"];
    let server = TestServer::start_with(data.path(), &args).await;
    let url = server.module_url(s.branch, "/tables/dining_tables?limit=1");
    let client = reqwest::Client::new();

    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..12 {
        let r = client.get(&url).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 && refused.is_none() {
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            refused = Some((retry, r.json::<serde_json::Value>().await.unwrap()));
        }
    }
    assert!(statuses[..5].iter().all(|s| *s == 200), "a burst of 5 is allowed: {statuses:?}");
    let (retry, body) = refused.expect("the 6th request within a second is refused");
    assert_eq!(retry.as_deref(), Some("1"), "Retry-After in whole seconds");
    assert_eq!(body["error"], "rate-limited");
    let wait = body["details"]["retryAfterMs"].as_u64().unwrap();
    assert!(wait > 0 && wait <= 200, "{body}");
    tokio::time::sleep(Duration::from_millis(wait + 50)).await;
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200, "after the wait, served again");

    // WebSocket messages spend the same bucket; a refused one is answered and the socket lives on.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut ws = WsClient::connect(&server.ws_url()).await;
    for i in 0..8 {
        ws.send(json!({"type": "ping", "requestId": format!("p{i}")})).await;
    }
    let frames = ws.drain(Duration::from_millis(300)).await;
    let limited: Vec<_> = frames.iter().filter(|f| f["code"] == "rate-limited").collect();
    assert!(!limited.is_empty(), "{frames:?}");
    assert!(limited[0]["details"]["retryAfterMs"].as_u64().is_some() && limited[0]["requestId"].is_string());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ws.send(json!({"type": "ping"})).await;
    ws.recv_type("pong").await;

    // Three connections per address: a fourth is refused until one closes.
    let second = WsClient::connect(&server.ws_url()).await;
    let third = WsClient::connect(&server.ws_url()).await;
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 429),
        other => panic!("a fourth connection: expected 429, got {:?}", other.map(|_| "a socket")),
    }
    drop(third);
    let mut reopened = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(server.ws_url()).await {
            reopened = Some(ws);
            break;
        }
    }
    assert!(reopened.is_some(), "a closed connection frees its slot");
    drop(second);

    // CORS: the listed origin may call, another may not.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (origin, allowed) in [("http://pos.example", true), ("http://evil.example", false)] {
        let r = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        let echoed = r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(echoed.as_deref() == Some(origin), allowed, "{origin}: {echoed:?}");
    }
}
