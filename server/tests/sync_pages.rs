//! A first sync in pages (`GET .../modules/{m}/pages`), on the real binary: a quiet module's pages
//! are its snapshot; pages walked while writes land, then the delta since the first page's
//! sequence, give exactly the module at the delta's end (a property over interleavings); a client
//! that takes snapshots in pages is told to walk them instead of being sent one frame.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

type Rows = BTreeMap<(String, String), Value>;

/// One page from `from` (the start without one).
async fn page(server: &TestServer, branch: &str, from: &Value, limit: usize) -> Value {
    let mut url = server.module_url(branch, &format!("/pages?limit={limit}"));
    if let Some(table) = from["table"].as_str() {
        url.push_str(&format!("&table={}", urlencode(table)));
    }
    if let Some(after) = from["after"].as_str() {
        url.push_str(&format!("&after={}", urlencode(after)));
    }
    let (status, body) = get_status(&url).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Lays a page's rows over `rows`, under the keys it gives.
fn lay(rows: &mut Rows, page: &Value) {
    for (table, list) in page["tables"].as_object().unwrap() {
        let keys = page["keys"][table].as_array().unwrap();
        assert_eq!(keys.len(), list.as_array().unwrap().len(), "a key per row: {page}");
        for (key, row) in keys.iter().zip(list.as_array().unwrap()) {
            rows.insert((table.clone(), key.as_str().unwrap().to_owned()), row.clone());
        }
    }
}

/// Every page of the module with `limit` rows each; the first page's sequence and the pages.
async fn walk(server: &TestServer, branch: &str, limit: usize) -> (u64, Rows, usize) {
    let (mut rows, mut from, mut pages, mut first) = (Rows::new(), Value::Null, 0, None);
    loop {
        let p = page(server, branch, &from, limit).await;
        first.get_or_insert(p["sequence"].as_u64().unwrap());
        lay(&mut rows, &p);
        pages += 1;
        if p["next"].is_null() {
            return (first.unwrap(), rows, pages);
        }
        from = p["next"].clone();
    }
}

#[tokio::test]
async fn a_quiet_modules_pages_are_its_snapshot_and_every_position_is_checked() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let snapshot = get_json(&server.module_url(s.branch, "")).await;
    let (sequence, rows, pages) = walk(&server, s.branch, 5).await;
    assert_eq!(sequence, snapshot["version"].as_u64().unwrap());
    let total: usize = snapshot["tables"].as_object().unwrap().values().map(|t| t.as_array().unwrap().len()).sum();
    assert!(total > 20 && pages >= total / 5, "{pages} pages of {total} rows");
    for (table, list) in snapshot["tables"].as_object().unwrap() {
        let mut expected: Vec<String> = list.as_array().unwrap().iter().map(Value::to_string).collect();
        let mut paged: Vec<String> = rows.iter().filter(|((t, _), _)| t == table).map(|(_, r)| r.to_string()).collect();
        expected.sort();
        paged.sort();
        assert_eq!(paged, expected, "table {table}: the pages hold exactly the snapshot's rows");
    }
    // One page of everything is the same walk in one step.
    let (_, whole, one) = walk(&server, s.branch, 10_000).await;
    assert_eq!((whole, one), (rows, 1));
    // Bad positions are refused with a code, not a 500 or an empty page.
    for (query, code) in [
        ("table=no_such_table", "table-not-found"),
        ("after=x", "invalid-position"),
        ("limit=0", "invalid-limit"),
        ("limit=ten", "invalid-limit"),
    ] {
        let (status, body) = get_status(&server.module_url(s.branch, &format!("/pages?{query}"))).await;
        assert!(status == 400 || status == 404, "{query}: {status} {body}");
        assert_eq!(body["error"], json!(code), "{query}: {body}");
    }
}

#[derive(Debug, Clone)]
enum Write {
    Insert(u16),
    Rename(u16),
    Delete(u16),
}

fn writes() -> impl Strategy<Value = Vec<Write>> {
    let one = prop_oneof![
        any::<u16>().prop_map(Write::Insert),
        any::<u16>().prop_map(Write::Rename),
        any::<u16>().prop_map(Write::Delete),
    ];
    prop::collection::vec(one, 0..4)
}

/// Applies `w` to the module; `ids` are the dining tables this test created (and still exist).
async fn apply(server: &TestServer, branch: &str, ids: &mut Vec<String>, w: &Write, n: &mut u32) {
    let url = server.module_url(branch, "/tables/dining_tables");
    match w {
        Write::Insert(k) => {
            *n += 1;
            // Keys land anywhere in the walk's order: before, inside or after the page read last.
            let id = format!("{:04x}-{n}", k);
            let (status, body) = post_json(&url, json!({"record": dining_table(&id, "new")})).await;
            assert_eq!(status, 201, "{body}");
            ids.push(id);
        }
        Write::Rename(i) if !ids.is_empty() => {
            let id = ids[*i as usize % ids.len()].clone();
            let (status, body) =
                send_json(Method::PATCH, &url, json!({"record": {"id": id, "name": format!("renamed {n}")}})).await;
            assert_eq!(status, 200, "{body}");
            *n += 1;
        }
        Write::Delete(i) if !ids.is_empty() => {
            let id = ids.remove(*i as usize % ids.len());
            let (status, body) = send_json(Method::DELETE, &format!("{url}/{}", urlencode(&id)), Value::Null).await;
            assert_eq!(status, 200, "{body}");
        }
        _ => {}
    }
}

#[test]
fn pages_walked_while_writes_land_then_the_delta_since_the_first_page_give_the_module_at_its_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = rt.block_on(TestServer::start(data.path()));
    // Kept across cases (each case starts from where the last left the module).
    let kept = std::cell::RefCell::new((Vec::new(), 0u32));
    let config = ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(limit in 8usize..48, before in writes(), gaps in prop::collection::vec(writes(), 1..12))| {
        let (ids, n) = &mut *kept.borrow_mut();
        rt.block_on(async {
            for w in &before {
                apply(&server, s.branch, ids, w, n).await;
            }
            let (mut rows, mut from, mut first) = (Rows::new(), Value::Null, None);
            let mut gaps = gaps.iter().cycle();
            loop {
                let p = page(&server, s.branch, &from, limit).await;
                first.get_or_insert(p["sequence"].as_u64().unwrap());
                lay(&mut rows, &p);
                if p["next"].is_null() {
                    break;
                }
                from = p["next"].clone();
                for w in gaps.next().unwrap() {
                    apply(&server, s.branch, ids, w, n).await;
                }
            }
            // A last write after the walk, then the delta since the first page's sequence.
            apply(&server, s.branch, ids, &Write::Insert(0xffff), n).await;
            let delta_url = server.url(&format!("/api/sync/{}/pos/delta", urlencode(s.branch)));
            let (status, delta) = post_json(&delta_url, json!({"sequence": first.unwrap()})).await;
            assert_eq!((status, delta["requiresFullSync"].clone()), (200, json!(false)), "{delta}");
            for (table, list) in delta["deltas"].as_object().unwrap() {
                assert_eq!(table, "dining_tables", "only dining tables were written: {delta}");
                for row in list.as_array().unwrap() {
                    rows.insert((table.clone(), row["id"].as_str().unwrap().to_owned()), row.clone());
                }
            }
            for (table, keys) in delta["deletions"].as_object().unwrap() {
                for key in keys.as_array().unwrap() {
                    rows.remove(&(table.clone(), key.as_str().unwrap().to_owned()));
                }
            }
            let (now, truth, _) = walk(&server, s.branch, 10_000).await;
            assert_eq!(delta["version"].as_u64(), Some(now), "nothing was written after the delta");
            assert_eq!(rows, truth, "pages + delta = the module at the delta's end (limit {limit})");
        });
    });
}

#[tokio::test]
async fn a_client_that_takes_snapshots_in_pages_is_told_to_walk_them() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": true, "snapshot": "pages"})).await;
    let told = ws.recv_where("resync", |f| f["type"] == "server:directive").await;
    assert_eq!((told["directive"].clone(), told["moduleId"].clone()), (json!("resync"), json!("pos")), "{told}");
    let rest = ws.drain(Duration::from_millis(300)).await;
    assert!(!rest.iter().any(|f| f["type"] == "server:snapshot"), "no snapshot frame: {rest:?}");
    // After the walk, its hello with the first page's sequence gets the delta since.
    let first = page(&server, s.branch, &Value::Null, 3).await;
    let cursor = first["sequence"].as_u64().unwrap();
    post_json(&server.module_url(s.branch, "/tables/dining_tables"), json!({"record": dining_table("late", "Late")}))
        .await;
    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": {"pos": cursor}, "snapshot": "pages"}))
        .await;
    let delta = ws.recv_type("server:delta").await;
    assert_eq!(delta["tables"]["dining_tables"][0]["id"], json!("late"), "{delta}");
}
