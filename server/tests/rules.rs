//! The security rules against the real binary, with `--auth required` and a rules file written
//! for the test: every role × every path. Each read path shows each role exactly the rows its
//! `list` rule admits and never a hidden field; each write is allowed or refused (`forbidden`,
//! `read-only-field`) as the rules say, and a refused one stores nothing; the branch-wide fan-out
//! and live queries give each subscriber what its rule admits, with a removal when a row leaves.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const SECRET: &str = "rules-test-secret-of-some-length";

fn token(claims: Value) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

/// The identities of the matrix.
struct Roles {
    admin: String,
    cashier: String,
    hot: String,
    cold: String,
    guest: String,
}

impl Roles {
    fn new() -> Roles {
        Roles {
            admin: token(json!({"sub": "a1", "role": "admin"})),
            cashier: token(json!({"sub": "c1", "role": "cashier"})),
            hot: token(json!({"sub": "k1", "role": "kitchen", "section": "hot"})),
            cold: token(json!({"sub": "k2", "role": "kitchen", "section": "cold"})),
            guest: token(json!({"sub": "g1", "role": "guest"})),
        }
    }
}

/// Kitchens see and move on their own section's lines; cashiers create and see every line;
/// everything else is readable by any identity and writable by admins only.
fn rules(s: &Scenario) -> Value {
    let status = s.line_status;
    json!({"modules": {"pos": {"tables": {
        "order_line": {
            "list": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
            "view": "@auth.role = \"cashier\" || kitchenSectionId = @auth.section",
            "create": "@auth.role = \"cashier\"",
            "update": format!("@auth.role = \"cashier\" || (@auth.role = \"kitchen\" && kitchenSectionId = @auth.section \
                               && @new.kitchenSectionId = @auth.section && @new.{status} in [\"cooking\", \"ready\"])"),
            "delete": null,
            "hidden": ["unitPrice"],
            "readOnly": ["notes"]},
        "employees": {"list": null, "view": null},
        "audit_events": {"list": null, "view": null, "create": "@auth.role = \"cashier\""},
        "*": {"list": "", "view": "", "create": null, "update": null, "delete": null}}}}})
}

async fn start() -> (DataCopy, TestServer, Roles) {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(&data.path().join("security/rules.json"), &rules(&s));
    let server = TestServer::start_with(data.path(), &["--auth", "required", "--jwt-secret", SECRET]).await;
    (data, server, Roles::new())
}

async fn call(method: Method, url: &str, token: &str, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url).bearer_auth(token);
    if !body.is_null() {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn line(s: &Scenario, id: &str, section: &str) -> Value {
    json!({"id": id, "orderId": "O-1", "itemId": "item-1", "kitchenSectionId": section, s.line_status: "queued",
           "quantity": 1, "unitPrice": 99, "total": 99, "notes": "spicy"})
}

fn ids_of<'v>(rows: impl IntoIterator<Item = &'v Value>) -> BTreeSet<String> {
    rows.into_iter().filter_map(|r| r["id"].as_str()).filter(|id| id.starts_with("L-")).map(str::to_owned).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn no_hidden(what: &str, v: &Value) {
    let text = v.to_string();
    assert!(!text.contains("unitPrice"), "{what} leaked a hidden field: {text}");
}

async fn ws_as(server: &TestServer, token: &str) -> WsClient {
    WsClient::connect(&format!("{}?token={token}", server.ws_url())).await
}

#[tokio::test]
async fn every_read_path_shows_each_role_only_the_rows_its_list_rule_admits() {
    let (data, server, roles) = start().await;
    let s = data.scenario.clone();
    let lines = server.module_url(s.branch, "/tables/order_line");
    for (id, section) in [("L-h1", "hot"), ("L-h2", "hot"), ("L-c1", "cold")] {
        let (status, body) = call(Method::POST, &lines, &roles.admin, json!({"record": line(&s, id, section)})).await;
        assert_eq!(status, 201, "{body}");
    }
    let all = set(&["L-h1", "L-h2", "L-c1"]);
    let matrix = [
        ("admin", &roles.admin, all.clone()),
        ("cashier", &roles.cashier, all.clone()),
        ("hot kitchen", &roles.hot, set(&["L-h1", "L-h2"])),
        ("cold kitchen", &roles.cold, set(&["L-c1"])),
        ("guest", &roles.guest, set(&[])),
    ];
    let mine = urlencode_query(r#"id ~ "L-""#);
    for (role, token, expected) in &matrix {
        let n = expected.len();
        // REST: a page, a count, an aggregate, a search.
        let (status, page) = call(Method::GET, &format!("{lines}?filter={mine}"), token, Value::Null).await;
        assert_eq!((status, ids_of(page["rows"].as_array().unwrap())), (200, expected.clone()), "{role}: page");
        no_hidden(role, &page);
        let (_, count) = call(Method::GET, &format!("{lines}/count?filter={mine}"), token, Value::Null).await;
        assert_eq!(count["count"], json!(n), "{role}: count {count}");
        let (_, agg) =
            call(Method::GET, &format!("{lines}/aggregate?filter={mine}&groupBy=kitchenSectionId"), token, Value::Null)
                .await;
        let counted: u64 = agg["groups"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, n as u64, "{role}: aggregate {agg}");
        let (_, found) = call(Method::GET, &format!("{lines}/search?q=spicy&filter={mine}"), token, Value::Null).await;
        let hits: Vec<&Value> = found["hits"].as_array().unwrap().iter().map(|h| &h["row"]).collect();
        assert_eq!(ids_of(hits), *expected, "{role}: search {found}");
        no_hidden(role, &found);
        // Snapshots: the module's, the branch's; a delta from the start; the event log.
        let (_, snap) = call(Method::GET, &server.module_url(s.branch, ""), token, Value::Null).await;
        assert_eq!(ids_of(snap["tables"]["order_line"].as_array().unwrap()), *expected, "{role}: snapshot");
        no_hidden(role, &snap);
        let employees = snap["tables"]["employees"].as_array().unwrap();
        assert_eq!(employees.is_empty(), *role != "admin", "{role}: employees are for admins: {employees:?}");
        let (status, pages) = call(Method::GET, &server.module_url(s.branch, "/pages"), token, Value::Null).await;
        assert_eq!((status, pages["next"].clone()), (200, Value::Null), "{role}: one page holds the module");
        assert_eq!(ids_of(pages["tables"]["order_line"].as_array().unwrap()), *expected, "{role}: first-sync page");
        assert_eq!(pages["tables"]["employees"].as_array().unwrap().is_empty(), *role != "admin", "{role}: pages");
        let keys = pages["keys"]["order_line"].as_array().unwrap().iter().filter_map(Value::as_str);
        assert_eq!(keys.filter(|k| k.starts_with("L-")).map(str::to_owned).collect::<BTreeSet<_>>(), *expected);
        no_hidden(role, &pages);
        let branch_url = server.url(&format!("/api/branches/{}", urlencode(s.branch)));
        let (_, branch) = call(Method::GET, &branch_url, token, Value::Null).await;
        assert_eq!(ids_of(branch["modules"]["pos"]["tables"]["order_line"].as_array().unwrap()), *expected);
        let delta_url = server.url(&format!("/api/sync/{}/pos/delta", urlencode(s.branch)));
        let (_, delta) = call(Method::POST, &delta_url, token, json!({"version": 0})).await;
        let changed = delta["deltas"]["order_line"].as_array().cloned().unwrap_or_default();
        assert_eq!(ids_of(&changed), *expected, "{role}: delta {delta}");
        no_hidden(role, &delta);
        let (_, events) = call(Method::GET, &server.module_url(s.branch, "/events"), token, Value::Null).await;
        let logged: Vec<&Value> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["change"]["table"] == "order_line" || e["table"] == "order_line")
            .filter_map(|e| e.get("change").and_then(|c| c.get("row")).or_else(|| e.get("row")))
            .collect();
        assert_eq!(ids_of(logged), *expected, "{role}: events");
        no_hidden(role, &events);
        let (_, tables) = call(Method::GET, &server.module_url(s.branch, "/tables"), token, Value::Null).await;
        if *role == "guest" {
            assert_eq!(tables["tables"]["order_line"], json!(0), "{tables}");
        }

        // WebSocket: the hello snapshot, client:query list and get, an aggregate, a live query.
        let mut ws = ws_as(&server, token).await;
        ws.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": true})).await;
        let snap = ws.recv_type("server:snapshot").await;
        assert_eq!(ids_of(snap["modules"]["pos"]["tables"]["order_line"].as_array().unwrap()), *expected);
        no_hidden(role, &snap);
        ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "order_line", "queryType": "list",
                       "filter": r#"id ~ "L-""#, "requestId": "q"}))
            .await;
        let q = ws.recv_where("query", |f| f["requestId"] == "q").await;
        assert_eq!(ids_of(q["result"].as_array().unwrap()), *expected, "{role}: {q}");
        for id in ["L-h1", "L-c1"] {
            ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "order_line", "queryType": "get",
                           "id": id, "requestId": id}))
                .await;
            let got = ws.recv_where("get", |f| f["requestId"] == id).await;
            assert_eq!(got["result"].is_object(), expected.contains(id), "{role} get {id}: {got}");
            no_hidden(role, &got);
        }
        ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "order_line", "filter": r#"id ~ "L-""#,
                       "aggregate": {"groupBy": ["kitchenSectionId"]}, "requestId": "agg"}))
            .await;
        let agg = ws.recv_where("aggregate", |f| f["requestId"] == "agg").await;
        let counted: u64 = agg["result"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, n as u64, "{role}: {agg}");
        ws.send(json!({"type": "client:subscribe", "subId": "lines", "moduleId": "pos", "table": "order_line",
                       "filter": r#"id ~ "L-""#, "requestId": "sub"}))
            .await;
        let live = ws.recv_type("server:subscribed").await;
        assert_eq!(ids_of(live["rows"].as_array().unwrap()), *expected, "{role}: live {live}");
        no_hidden(role, &live);
    }
}

fn urlencode_query(text: &str) -> String {
    text.replace('%', "%25").replace(' ', "%20").replace('"', "%22").replace('~', "%7E")
}

#[tokio::test]
async fn every_write_path_allows_and_refuses_as_the_rules_say_and_a_refusal_stores_nothing() {
    let (data, server, roles) = start().await;
    let s = data.scenario.clone();
    let lines = server.module_url(s.branch, "/tables/order_line");
    let mut plain = line(&s, "L-1", "hot");
    plain.as_object_mut().unwrap().remove("notes");
    let record = |id: &str, section: &str| {
        let mut r = plain.clone();
        r["id"] = json!(id);
        r["kitchenSectionId"] = json!(section);
        r
    };

    // Create: cashiers and admins; a kitchen and a guest are refused, with the table and action.
    for (who, token, id, allowed) in [
        ("cashier", &roles.cashier, "L-1", true),
        ("admin", &roles.admin, "L-2", true),
        ("hot kitchen", &roles.hot, "L-3", false),
        ("guest", &roles.guest, "L-4", false),
    ] {
        let (status, body) = call(Method::POST, &lines, token, json!({"record": record(id, "hot")})).await;
        if allowed {
            assert_eq!(status, 201, "{who}: {body}");
        } else {
            assert_eq!(status, 403, "{who}: {body}");
            assert_eq!(body["error"], "forbidden");
            assert_eq!(body["details"], json!({"table": "order_line", "action": "create"}));
        }
    }
    // Over WebSocket too: the error frame carries the requestId.
    let mut kitchen = ws_as(&server, &roles.hot).await;
    kitchen.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
    kitchen.recv_type("server:log").await;
    kitchen
        .send(json!({"type": "client:publish", "moduleId": "pos", "table": "order_line", "action": "module:insert",
                     "record": record("L-5", "hot"), "requestId": "w1"}))
        .await;
    let refused = kitchen.recv_where("the refusal", |f| f["requestId"] == "w1").await;
    assert_eq!((refused["code"].as_str(), refused["details"]["action"].as_str()), (Some("forbidden"), Some("create")));
    // An atomic batch with one refused write stores none of them.
    let batch = server.module_url(s.branch, "/events/batch");
    let (status, body) = call(
        Method::POST,
        &batch,
        &roles.hot,
        json!({"events": [{"table": "dining_tables", "record": dining_table("T-x", "X")},
                          {"table": "order_line", "record": record("L-6", "hot")}]}),
    )
    .await;
    assert_eq!(status, 409, "the batch is aborted: {body}");
    // readOnly: a cashier may not set `notes`; an admin may.
    let mut noted = record("L-7", "hot");
    noted["notes"] = json!("extra cheese");
    let (status, body) = call(Method::POST, &lines, &roles.cashier, json!({"record": noted.clone()})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("read-only-field")), "{body}");
    assert_eq!(body["details"]["field"], "notes");
    let (status, _) = call(Method::POST, &lines, &roles.admin, json!({"record": noted})).await;
    assert_eq!(status, 201);
    let (status, _) = call(Method::POST, &lines, &roles.cashier, json!({"record": record("L-8", "cold")})).await;
    assert_eq!(status, 201);

    // Update: a kitchen moves its own section's lines to cooking/ready and nothing else.
    let status_field = s.line_status;
    // A line the kitchen may not see is answered as a missing one (404), not 403: no probing.
    for (who, token, id, patch, expected_status) in [
        ("hot kitchen, own line", &roles.hot, "L-1", json!({status_field: "cooking"}), 200),
        ("cold kitchen, hot line", &roles.cold, "L-1", json!({status_field: "ready"}), 404),
        ("hot kitchen, a status it may not set", &roles.hot, "L-1", json!({status_field: "paid"}), 403),
        ("hot kitchen, moving the line away", &roles.hot, "L-1", json!({"kitchenSectionId": "cold"}), 403),
        ("hot kitchen, cold line", &roles.hot, "L-8", json!({status_field: "cooking"}), 404),
        ("hot kitchen, no such line", &roles.hot, "L-none", json!({status_field: "cooking"}), 404),
        ("guest", &roles.guest, "L-1", json!({status_field: "ready"}), 404),
        ("cashier", &roles.cashier, "L-1", json!({"quantity": 2}), 200),
    ] {
        let mut patch = patch;
        patch["id"] = json!(id);
        // order_line is versioned (in the real schema): a write names the version it changes.
        let expected = version_of(&lines, &roles.admin, id).await;
        let (status, body) =
            call(Method::PATCH, &lines, token, json!({"record": patch, "expectedVersion": expected})).await;
        assert_eq!(status, expected_status, "{who}: {body}");
        if expected_status == 403 {
            assert_eq!(body["details"]["action"], "update", "{who}: {body}");
        }
        if expected_status == 404 {
            assert_eq!(body["error"], "not-found", "{who}: {body}");
        }
    }
    // Delete: admins only.
    let (status, body) = call(Method::DELETE, &format!("{lines}?id=L-2"), &roles.cashier, Value::Null).await;
    assert_eq!((status, body["details"]["action"].as_str()), (403, Some("delete")), "{body}");
    let (status, _) = call(Method::DELETE, &format!("{lines}?id=L-2"), &roles.admin, Value::Null).await;
    assert_eq!(status, 200);
    // Another table under `*`: readable by anyone, writable by admins.
    let sections = server.module_url(s.branch, "/tables/dining_tables");
    let (status, _) = call(Method::POST, &sections, &roles.cashier, json!({"record": dining_table("T-c", "C")})).await;
    assert_eq!(status, 403);
    let (status, _) = call(Method::POST, &sections, &roles.admin, json!({"record": dining_table("T-a", "A")})).await;
    assert_eq!(status, 201);
    // A sequence number is taken only by who may create the table's rows.
    let seq = server.module_url(s.branch, "/sequences");
    let (status, body) =
        call(Method::POST, &seq, &roles.cashier, json!({"table": "order_header", "field": "id"})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = call(Method::POST, &seq, &roles.admin, json!({"table": "order_header", "field": "id"})).await;
    assert_eq!(status, 200, "{body}");
    // Management routes: admins only.
    let history = server.url(&format!("/api/manage/history?branchId={}&moduleId=pos", urlencode(s.branch)));
    assert_eq!(call(Method::GET, &history, &roles.cashier, Value::Null).await.0, 403);
    assert_eq!(call(Method::GET, &history, &roles.admin, Value::Null).await.0, 200);
    let compact = server.url("/api/manage/compact");
    let body = json!({"branchId": s.branch, "moduleId": "pos"});
    assert_eq!(call(Method::POST, &compact, &roles.hot, body.clone()).await.0, 403);
    let purge = server.url("/api/manage/purge");
    assert_eq!(call(Method::POST, &purge, &roles.cashier, body).await.0, 403);

    // What is stored is exactly what was allowed.
    let (_, page) = call(Method::GET, &format!("{lines}?filter=id%20~%20%22L-%22"), &roles.admin, Value::Null).await;
    let stored = ids_of(page["rows"].as_array().unwrap());
    assert_eq!(stored, set(&["L-1", "L-7", "L-8"]), "{page}");
    let row = page["rows"].as_array().unwrap().iter().find(|r| r["id"] == "L-1").unwrap();
    assert_eq!((row[status_field].as_str(), row["quantity"].as_i64()), (Some("cooking"), Some(2)), "{row}");
    // Every event records who wrote it, and admins see it in the log.
    let events_url = server.module_url(s.branch, "/events");
    let (_, log) = call(Method::GET, &events_url, &roles.admin, Value::Null).await;
    let actor_of = |log: &Value, key: &str| {
        log["events"].as_array().unwrap().iter().find(|e| e["change"]["key"] == key).map(|e| e.get("actor").cloned())
    };
    assert_eq!(actor_of(&log, "L-1"), Some(Some(json!("c1"))), "the cashier created L-1");
    assert_eq!(actor_of(&log, "L-7"), Some(Some(json!("a1"))), "the admin created L-7");
    let (_, theirs) = call(Method::GET, &events_url, &roles.cashier, Value::Null).await;
    assert_eq!(actor_of(&theirs, "L-1"), Some(None), "actors are for admins: {theirs}");
    let (_, tables) = call(Method::GET, &sections, &roles.admin, Value::Null).await;
    let names: Vec<&str> = tables["rows"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    assert!(names.contains(&"T-a") && !names.contains(&"T-c") && !names.contains(&"T-x"), "{names:?}");
}

/// The stored version of line `id`.
async fn version_of(lines: &str, admin: &str, id: &str) -> i64 {
    let (_, page) = call(Method::GET, &format!("{lines}?filter=id%20%3D%20%22{id}%22"), admin, Value::Null).await;
    // A row that does not exist has no version; any will do for the write that must not find it.
    page["rows"][0]["version"].as_i64().unwrap_or(1)
}

/// Every frame of `ws` within `window` about a row whose id starts with `L-`: (id, deleted).
async fn line_events(ws: &mut WsClient, window: Duration) -> Vec<(String, bool)> {
    ws.drain(window)
        .await
        .into_iter()
        .filter(|f| f["type"] == "server:event" && f["table"] == "order_line")
        .map(|f| {
            no_hidden("an event", &f);
            (f["recordRef"]["id"].as_str().unwrap_or_default().to_owned(), f["deleted"] == json!(true))
        })
        .collect()
}

#[tokio::test]
async fn fan_out_gives_each_subscriber_what_its_rule_admits_and_a_removal_when_a_row_leaves() {
    let (data, server, roles) = start().await;
    let s = data.scenario.clone();
    let lines = server.module_url(s.branch, "/tables/order_line");
    let mut sessions = Vec::new();
    for token in [&roles.hot, &roles.cold, &roles.guest, &roles.cashier] {
        let mut ws = ws_as(&server, token).await;
        ws.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
        ws.recv_type("server:log").await;
        sessions.push(ws);
    }
    let mut live = ws_as(&server, &roles.hot).await;
    live.send(json!({"type": "client:hello", "branchId": s.branch, "sync": "subscriptions"})).await;
    live.recv_type("server:log").await;
    live.send(json!({"type": "client:subscribe", "subId": "hot", "moduleId": "pos", "table": "order_line"})).await;
    live.recv_type("server:subscribed").await;

    let mut fresh = line(&s, "L-m", "hot");
    fresh.as_object_mut().unwrap().remove("notes");
    let (status, body) = call(Method::POST, &lines, &roles.cashier, json!({"record": fresh})).await;
    assert_eq!(status, 201, "{body}");
    let mut moved = line(&s, "L-m", "cold");
    moved.as_object_mut().unwrap().remove("notes");
    let expected = version_of(&lines, &roles.admin, "L-m").await;
    let (status, body) =
        call(Method::PATCH, &lines, &roles.cashier, json!({"record": moved, "expectedVersion": expected})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::POST, &lines, &roles.admin, json!({"record": line(&s, "L-c", "cold")})).await;
    assert_eq!(status, 201, "{body}");

    let window = Duration::from_millis(600);
    let [hot, cold, guest, cashier] = &mut sessions[..] else { unreachable!() };
    let m = |deleted| ("L-m".to_owned(), deleted);
    let c = |deleted| ("L-c".to_owned(), deleted);
    assert_eq!(line_events(hot, window).await, vec![m(false), m(true)], "hot: the insert, then its removal");
    assert_eq!(line_events(cold, window).await, vec![m(false), c(false)], "cold: the line arriving, then its own");
    assert_eq!(line_events(guest, window).await, vec![], "the guest sees no line at all");
    assert_eq!(line_events(cashier, window).await, vec![m(false), m(false), c(false)], "the cashier sees all");

    let changes: Vec<(String, String)> = live
        .drain(window)
        .await
        .into_iter()
        .filter(|f| f["type"] == "server:live")
        .map(|f| (f["op"].as_str().unwrap().to_owned(), f["key"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(changes, vec![("add".into(), "L-m".into()), ("remove".into(), "L-m".into())], "live: {changes:?}");
}

#[tokio::test]
async fn a_rules_file_that_does_not_fit_the_schema_stops_the_server_and_says_where() {
    let data = DataCopy::new();
    write_json(
        &data.path().join("security/rules.json"),
        &json!({"modules": {"pos": {"tables": {"order_line": {"list": "sectoin = \"hot\""}}}}}),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .args(["serve", "--data"])
        .arg(data.path())
        .args(["--host", "127.0.0.1", "--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("modules.pos.tables.order_line.list") && stderr.contains("sectoin"), "{stderr}");
}

#[tokio::test]
async fn legacy_topics_and_websocket_deltas_follow_the_rules_too() {
    let (data, server, roles) = start().await;
    let s = data.scenario.clone();
    let lines = server.module_url(s.branch, "/tables/order_line");
    for (id, section) in [("L-h1", "hot"), ("L-c1", "cold")] {
        let (status, body) = call(Method::POST, &lines, &roles.admin, json!({"record": line(&s, id, section)})).await;
        assert_eq!(status, 201, "{body}");
    }

    // A delta over WebSocket: the hot kitchen's changes only (the cold line, never seen, at most
    // as a tombstone key).
    let mut hot = ws_as(&server, &roles.hot).await;
    hot.send(json!({"type": "client:hello", "branchId": s.branch, "cursor": 1})).await;
    let delta = hot.recv_type("server:delta").await;
    assert_eq!(ids_of(delta["tables"]["order_line"].as_array().unwrap()), set(&["L-h1"]), "{delta}");
    no_hidden("a WS delta", &delta);

    // The legacy topic's state is what the rules admit.
    let topic = format!("sync:{}::pos", s.branch);
    hot.send(json!({"type": "subscribe", "topic": topic})).await;
    let state = hot.recv_type("publish").await;
    let held = state["data"]["tables"]["order_line"].as_array().unwrap().clone();
    assert_eq!(ids_of(&held), set(&["L-h1"]), "{state}");
    no_hidden("a topic state", &state);

    // Publishing that state back with the line moved on: allowed, and the cold line it never saw
    // is not deleted for being absent.
    let mut rows: Vec<Value> =
        held.into_iter().filter(|r| r["id"].as_str().is_some_and(|i| i.starts_with("L-"))).collect();
    rows[0][s.line_status] = json!("cooking");
    hot.send(json!({"type": "publish", "topic": topic, "data": {"trans_id": "t-hot", "tables": {"order_line": rows}}}))
        .await;
    let ack = hot.recv_where("the publish's answer", |f| f["type"] == "ack" && f["event"] == "publish").await;
    assert_eq!(ack["topic"], json!(topic));
    let (_, page) = call(Method::GET, &format!("{lines}?filter=id%20~%20%22L-%22"), &roles.admin, Value::Null).await;
    let stored = page["rows"].as_array().unwrap();
    assert_eq!(ids_of(stored), set(&["L-h1", "L-c1"]), "the unseen line stays: {page}");
    let h1 = stored.iter().find(|r| r["id"] == "L-h1").unwrap();
    assert_eq!(h1[s.line_status], "cooking");

    // The cold kitchen publishing a change to the hot line it cannot see: refused, all of it.
    let mut cold = ws_as(&server, &roles.cold).await;
    cold.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false})).await;
    cold.recv_type("server:log").await;
    let mut forged = line(&s, "L-h1", "hot");
    forged[s.line_status] = json!("ready");
    forged.as_object_mut().unwrap().remove("notes");
    cold.send(
        json!({"type": "publish", "topic": topic, "data": {"trans_id": "t-cold", "tables": {"order_line": [forged]}}}),
    )
    .await;
    let refused = cold.recv_where("the refusal", |f| f["type"] == "error").await;
    // Refused as the rules refuse it: not as a version conflict, which would reveal the row.
    assert_eq!(refused["code"], "batch-aborted", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("not allowed to update rows of `order_line`") && !message.contains("version"),
        "{message}"
    );
    let (_, page) =
        call(Method::GET, &format!("{lines}?filter=id%20%3D%20%22L-h1%22"), &roles.admin, Value::Null).await;
    assert_eq!(page["rows"][0][s.line_status], "cooking", "nothing of the refused publish was stored");
}

/// A transaction's reads see what the caller's rules let it see: a row hidden from it reads as
/// absent, whatever version it names (else a transaction would tell what its rules hide).
#[tokio::test]
async fn a_transaction_reads_only_what_the_rules_let_it_see() {
    let (data, server, r) = start().await;
    let s = &data.scenario;
    let lines = server.module_url(s.branch, "/tables/order_line");
    for (id, section) in [("L-TX-HOT", "hot"), ("L-TX-COLD", "cold")] {
        let mut record = line(s, id, section);
        record.as_object_mut().expect("an object").remove("notes");
        let (status, body) = call(Method::POST, &lines, &r.cashier, json!({"record": record})).await;
        assert_eq!(status, 201, "{body}");
    }
    let (cold, hot) = (version_of(&lines, &r.admin, "L-TX-COLD").await, version_of(&lines, &r.admin, "L-TX-HOT").await);
    let url = server.module_url(s.branch, "/transactions");
    let cook = json!({"action": "merge", "table": "order_line", "expectedVersion": hot,
                      "record": {"id": "L-TX-HOT", s.line_status: "cooking"}});
    let (status, body) = call(
        Method::POST,
        &url,
        &r.hot,
        json!({"reads": [{"table": "order_line", "id": "L-TX-COLD", "version": cold}], "writes": [cook.clone()]}),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("precondition-failed")), "{body}");
    assert_eq!(body["details"]["actual"], json!({"exists": false}), "{body}");
    let (status, body) = call(
        Method::POST,
        &url,
        &r.hot,
        json!({"reads": [{"table": "order_line", "id": "L-TX-COLD", "exists": false}], "writes": [cook]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The cashier sees the row: its version holds for it.
    let (status, body) = call(
        Method::POST,
        &url,
        &r.cashier,
        json!({"reads": [{"table": "order_line", "id": "L-TX-COLD", "version": cold}],
               "writes": [{"action": "merge", "table": "order_line", "expectedVersion": cold,
                           "record": {"id": "L-TX-COLD", "quantity": 2}}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A transaction's answer carries each row as the caller may read it: a hidden field never, a
/// row the caller may write but not read not at all (its id, version and sequence only).
#[tokio::test]
async fn a_transaction_answers_with_rows_only_as_the_caller_may_see_them() {
    let (data, server, r) = start().await;
    let s = &data.scenario;
    let mut record = line(s, "L-TX-ANSWER", "hot");
    record.as_object_mut().expect("an object").remove("notes");
    let audit = json!({"id": "AU-TX-1", "action": "line-added", "refType": "order_line", "refId": "L-TX-ANSWER",
                       "meta": {}, "userId": "c1", "occurredAt": "2026-12-06T07:00:00Z", "at": "2026-12-06T07:00:00Z"});
    let (status, body) = call(
        Method::POST,
        &server.module_url(s.branch, "/transactions"),
        &r.cashier,
        json!({"includeRecords": true, "writes": [
            {"action": "insert", "table": "order_line", "record": record},
            {"action": "insert", "table": "audit_events", "record": audit}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let results = body["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 2, "{body}");
    assert_eq!(results[0]["row"]["id"], "L-TX-ANSWER", "the caller's own visible row: {body}");
    assert!(results[0]["row"].get("unitPrice").is_none(), "a hidden field is never answered: {body}");
    assert_eq!(results[1]["id"], "AU-TX-1");
    assert!(results[1]["sequence"].as_u64().is_some(), "{body}");
    assert!(results[1].get("row").is_none_or(Value::is_null), "a row the caller may not read: {body}");
    // It was stored all the same.
    let (status, stored) =
        call(Method::GET, &server.module_url(s.branch, "/tables/audit_events/AU-TX-1"), &r.admin, Value::Null).await;
    assert_eq!((status, stored["record"]["action"].as_str()), (200, Some("line-added")), "{stored}");
}

#[tokio::test]
async fn a_transaction_whose_last_change_a_subscriber_may_not_see_still_reaches_it_at_once() {
    let (data, server, r) = start().await;
    let s = data.scenario.clone();
    let mut hot = Vec::new();
    for frames in ["compact", "original"] {
        let mut ws = ws_as(&server, &r.hot).await;
        ws.send(json!({"type": "client:hello", "branchId": s.branch, "requestSnapshot": false, "frames": frames}))
            .await;
        ws.recv_type("server:log").await;
        hot.push(ws);
    }
    let mut writes = Vec::new();
    for (id, section) in [("L-TXH", "hot"), ("L-TXC", "cold")] {
        let mut record = line(&s, id, section);
        record.as_object_mut().expect("an object").remove("notes");
        writes.push(json!({"action": "insert", "table": "order_line", "record": record}));
    }
    let url = server.module_url(s.branch, "/transactions");
    let (status, body) = call(Method::POST, &url, &r.cashier, json!({"writes": writes})).await;
    assert_eq!(status, 200, "{body}");
    // The hot kitchen sees the first change and not the last: its frames must not wait for a
    // rest of the transaction that will never come to it.
    let [compact, original] = &mut hot[..] else { unreachable!() };
    let frames = compact.drain(Duration::from_millis(1500)).await;
    let got: Vec<&Value> = frames.iter().filter(|f| f["type"] == "server:events").collect();
    assert_eq!(got.len(), 1, "{frames:?}");
    let changes = got[0]["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(changes.iter().map(|c| c["key"].as_str().unwrap_or_default()).collect::<Vec<_>>(), ["L-TXH"]);
    assert_eq!(line_events(original, Duration::from_millis(300)).await, vec![("L-TXH".to_owned(), false)]);
}
