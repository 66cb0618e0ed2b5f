//! `GET /api/openapi.json` on the real binary: an OpenAPI 3.1 description in which every operation
//! is one the router serves (each reaches its handler: an answer or a structured error, never the
//! router's "no such route"), every response of theirs in the statuses it declares, and a router
//! whose routes enter only through their descriptions.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// A value for each path parameter: the demo's.
fn sample(param: &str) -> &'static str {
    match param {
        "branch" => "demo",
        "module" => "pos",
        "table" => "dining_tables",
        "id" => "T01",
        "name" => "pos_schema",
        "path" => "whatever",
        other => panic!("no sample value for path parameter `{other}`"),
    }
}

#[tokio::test]
async fn every_operation_described_is_served_and_answers_as_described() {
    let data = DataCopy::new();
    let server = TestServer::start(data.path()).await;
    let http = reqwest::Client::new();
    let description: Value = http.get(server.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(description["openapi"].as_str().unwrap().starts_with("3.1"), "{}", description["openapi"]);
    let paths = description["paths"].as_object().unwrap();
    let mut operations = 0;
    // Reads first, then writes (a reset or a purge must not hide a route from the reads after it).
    for writes in [false, true] {
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let method: Method = method.to_uppercase().parse().unwrap();
                if (method != Method::GET) != writes {
                    continue;
                }
                operations += 1;
                let mut url = path.clone();
                for param in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "path") {
                    let name = param["name"].as_str().unwrap();
                    url = url.replace(&format!("{{{name}}}"), sample(name));
                }
                let mut request = http.request(method.clone(), server.url(&url));
                if op.get("requestBody").is_some() {
                    request = request.json(&json!({}));
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap();
                let what = format!("{method} {url}: {status} {}", &text[..text.len().min(200)]);
                assert_ne!(status, reqwest::StatusCode::METHOD_NOT_ALLOWED, "{what}");
                assert!(!status.is_server_error(), "{what}");
                let declared = &op["responses"];
                let class = format!("{}XX", status.as_u16() / 100);
                assert!(
                    declared.get(status.as_str()).is_some() || declared.get(&class).is_some(),
                    "{what}: not a status the description declares"
                );
                if status.is_client_error() {
                    // A handler's refusal, in the one error shape — not the router's silence.
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    assert!(body["error"].is_string() && body["message"].is_string(), "{what}");
                }
            }
        }
    }
    assert!(operations >= 48, "{operations} operations described");
}

#[test]
fn the_router_takes_routes_only_through_their_descriptions() {
    let router = include_str!("../src/http/mod.rs");
    assert!(!router.contains(".route("), "a route added to http/mod.rs outside `routes!` would go undescribed");
    // The app adds the WebSocket (not REST) and static files to the described routes, nothing else.
    let app = include_str!("../src/app.rs");
    let routes: Vec<&str> = app.lines().filter(|l| l.contains(".route(")).collect();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(routes[0].contains("\"/ws\""), "{routes:?}");
}
