//! Drop-in fidelity on real data (the original's behaviours of spec §1–2), against the real binary
//! with real HTTP and WebSocket clients, on the fixtures (or the repo's own data without them):
//! missing fields filled, default seed/schema paths, messy seeds, secret fields and locked tables
//! on every way out, translations, and capped pages that say so.

mod common;

use std::path::Path;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The module's schema as the server runs it: table → fields `(name, nullable)`.
async fn schema_fields(server: &TestServer, branch: &str, table: &str) -> Vec<(String, bool)> {
    let schema = get_json(&server.module_url(branch, "/schema")).await;
    schema["schema"]["tables"][table]["fields"]
        .as_array()
        .expect("the table is in the schema")
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_owned(), f["nullable"].as_bool().unwrap()))
        .collect()
}

fn assert_complete(row: &Value, fields: &[(String, bool)], what: &str) {
    for (name, nullable) in fields {
        let value = &row[name];
        assert!(row.get(name).is_some(), "{what}: `{name}` was not filled: {row}");
        assert!(*nullable || !value.is_null(), "{what}: required `{name}` is null: {row}");
    }
}

#[tokio::test]
async fn a_partial_order_header_is_stored_with_defaults_over_rest_and_websocket() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let fields = schema_fields(&server, s.branch, "order_header").await;
    let url = server.module_url(s.branch, "/tables/order_header");

    // What a real POS screen sends: a handful of fields.
    let (status, rest) =
        post_json(&url, json!({"record": {"id": "o-partial-rest", "statusId": "open", "tableId": "T1"}})).await;
    assert_eq!(status, 201, "{rest}");
    assert_complete(&rest["record"], &fields, "REST insert");
    assert_eq!(rest["record"]["statusId"], json!("open"), "given values are kept");

    let (mut ws, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    ws.send(json!({"type": "client:publish", "moduleId": "pos", "table": "order_header", "action": "module:insert",
                   "record": {"id": "o-partial-ws", "orderTypeId": "dine_in", "guests": "3"},
                   "requestId": "r-partial", "includeRecord": true}))
        .await;
    let ack = ws.recv_where("the ack", |f| f["type"] == "server:ack" && f["requestId"] == "r-partial").await;
    let record = &ack["entry"]["record"];
    assert_complete(record, &fields, "WS insert");
    assert_eq!(record["guests"], json!(3), "coercion still applies");
    let listed = get_json(&format!("{url}?limit=10000")).await;
    let stored = listed["rows"].as_array().unwrap().iter().find(|r| r["id"] == "o-partial-ws").expect("stored").clone();
    assert_eq!(&stored, record, "the ack echoes the stored row");

    // A keyless insert gets a generated key, as in the original.
    let (status, keyless) =
        post_json(&server.module_url(s.branch, "/tables/dining_tables"), json!({"record": {"name": "Patio"}})).await;
    assert_eq!(status, 201, "{keyless}");
    assert!(keyless["record"]["id"].as_str().is_some_and(|id| id.len() >= 32), "{keyless}");

    // A value of the wrong type is stored as sent, as the original stored it (`--validation
    // lenient`, the default), and filters on its field still mean what the evaluator means.
    let (status, odd) = post_json(&url, json!({"record": {"id": "o-odd", "guests": "many", "notes": "text"}})).await;
    assert_eq!(status, 201, "{odd}");
    assert_eq!(odd["record"]["guests"], json!("many"));
    for (filter, expected) in
        [("guests >= 0", false), ("guests = null", false), ("guests != 3", true), ("guests = \"many\"", true)]
    {
        let page =
            reqwest::Client::new().get(&url).query(&[("filter", filter), ("limit", "10000")]).send().await.unwrap();
        let page: serde_json::Value = page.json().await.unwrap();
        let found = page["rows"].as_array().unwrap().iter().any(|r| r["id"] == "o-odd");
        assert_eq!(found, expected, "{filter}: {page}");
    }
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("mishkah_values_tolerated_total{table=\"order_header\",field=\"guests\",rule=\"type\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refuse_mode_is_the_operators_choice() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--missing-fields", "refuse"]).await;
    let url = server.module_url(s.branch, "/tables/order_header");
    let (status, body) = post_json(&url, json!({"record": {"id": "o-refused"}})).await;
    assert_eq!(status, 422, "{body}");
    let rules: Vec<&Value> = body["details"]["errors"].as_array().unwrap().iter().map(|e| &e["rule"]).collect();
    assert!(!rules.is_empty() && rules.iter().all(|r| *r == "required"), "{body}");
    let (status, _) = post_json(&url, json!({"record": order_header(Some("o-full"))})).await;
    assert_eq!(status, 201, "a complete insert still lands");
}

#[tokio::test]
async fn a_module_without_seed_path_seeds_from_its_default_file() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    // As most real modules.json files: no seedPath, no schemaPath, and here no seed fallback
    // either, so only the default `seeds/initial.json` can provide the rows.
    let modules_path = data.path().join("modules.json");
    let mut modules = read_json(&modules_path);
    let pos = modules["modules"]["pos"].as_object_mut().unwrap();
    for key in ["seedPath", "schemaPath", "seedFallbackPath"] {
        pos.remove(key);
    }
    write_json(&modules_path, &modules);
    let own_seed = data.path().join(format!("branches/{}/modules/pos/seeds/initial.json", s.branch));
    if !own_seed.is_file() {
        // The repo's demo branch seeds from the fallback; give it its own file for this test.
        write_json(&own_seed, &read_json(&data.path().join("seeds/pos_demo.json")));
    }
    let server = TestServer::start(data.path()).await;
    let items = get_json(&server.module_url(s.branch, "/tables/menu_items")).await;
    assert_eq!(items["count"], json!(s.menu_items), "{}", server.log());
    assert!(server.log().contains("module ready (seeded)"), "one summary line per module");
}

/// A module of its own in the data directory: compact schema and seed at the default paths
/// (`modules.json` names neither), a messy seed, and a translation table.
fn add_fidelity_module(data: &Path) {
    let modules_path = data.join("modules.json");
    let mut modules = read_json(&modules_path);
    modules["modules"]["fidelity"] = json!({"label": "Fidelity", "tables": ["items", "items_lang"]});
    write_json(&modules_path, &modules);
    let branches_path = data.join("branches.config.json");
    let mut branches = read_json(&branches_path);
    branches["branches"]["fid"] = json!({"label": "Fidelity", "modules": ["fidelity"]});
    write_json(&branches_path, &branches);
    let dir = data.join("branches/fid/modules/fidelity");
    write_json(
        &dir.join("schema/definition.json"),
        &json!({"tables": {
            "items": {"fields": {"id": {"type": "text", "primaryKey": true}, "name": {"type": "text"},
                                 "code": {"type": "text", "unique": true}, "price": {"type": "decimal"}}},
            "items_lang": {"fields": {"id": {"type": "text", "primaryKey": true}, "items_id": {"type": "text"},
                                      "lang": {"type": "text"}, "name": {"type": "text"}, "note": {"type": "text"}}}}}),
    );
    write_json(
        &dir.join("seeds/initial.json"),
        &json!({"version": 1, "tables": {
        "items": [
            {"id": "i1", "name": "koshary", "code": "K", "price": 40},
            {"id": "i2", "name": "koshary large", "code": "K", "price": 55},
            {"id": "i1", "name": "a repeated i1", "code": "X", "price": 1},
            {"id": "i3", "name": "foul", "code": "F", "price": 20}
        ],
        "items_lang": [
            {"id": "t1", "items_id": "i1", "lang": "ar", "name": "كشري", "note": "عربي"},
            {"id": "t2", "items_id": "i1", "lang": "en", "name": "Koshary"},
            {"id": "t3", "items_id": "i3", "lang": "ar", "name": "فول"}
        ]}}),
    );
}

fn fid_url(server: &TestServer, rest: &str) -> String {
    server.url(&format!("/api/branches/fid/modules/fidelity{rest}"))
}

#[tokio::test]
async fn a_messy_seed_loses_no_distinct_key_and_says_what_it_merged_and_relaxed() {
    let data = DataCopy::new();
    add_fidelity_module(data.path());
    let server = TestServer::start(data.path()).await;
    let items = get_json(&fid_url(&server, "/tables/items")).await;
    let rows = items["rows"].as_array().unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["i1", "i2", "i3"], "every distinct key, despite the shared code `K`");
    assert_eq!(rows[0]["name"], json!("koshary"), "first wins");
    let log = server.log();
    assert!(log.contains("items.code") && log.contains("created as a plain index"), "{log}");
    assert!(log.contains("merged=1") && log.contains("relaxed=1"), "{log}");
    // The relaxed index stays relaxed: a live write may share the code too.
    let (status, body) =
        post_json(&fid_url(&server, "/tables/items"), json!({"record": {"id": "i4", "code": "K"}})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn translations_join_on_the_table_route_the_snapshot_and_the_hello() {
    let data = DataCopy::new();
    add_fidelity_module(data.path());
    let server = TestServer::start(data.path()).await;
    let en = get_json(&fid_url(&server, "/tables/items?lang=en")).await;
    let by_id =
        |body: &Value, id: &str| body["rows"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    let i1 = by_id(&en, "i1");
    assert_eq!(i1["name"], json!("koshary"), "top-level fields stay as stored");
    assert_eq!(i1["i18n"]["lang"]["en"]["name"], json!("Koshary"));
    assert_eq!(i1["i18n"]["lang"]["en"]["note"], json!("عربي"), "the fallback (ar) fills what en lacks");
    assert_eq!(i1["i18n"]["lang"]["en"]["price"], json!(40), "over the row's own fields");
    assert_eq!(by_id(&en, "i3")["i18n"]["lang"]["en"]["name"], json!("فول"));
    let default = get_json(&fid_url(&server, "/tables/items")).await;
    assert_eq!(by_id(&default, "i1")["i18n"]["lang"]["ar"]["name"], json!("كشري"), "lang defaults to ar");
    let fr = get_json(&fid_url(&server, "/tables/items?lang=fr&fallbackLang=en")).await;
    assert_eq!(by_id(&fr, "i1")["i18n"]["lang"]["fr"]["name"], json!("Koshary"));

    let snapshot = get_json(&fid_url(&server, "?lang=en")).await;
    let items = snapshot["tables"]["items"].as_array().unwrap();
    assert_eq!(items[0]["name"], json!("Koshary"), "snapshots merge at top level");
    assert_eq!(items[2]["name"], json!("foul"), "no en translation: as stored");
    let plain = get_json(&fid_url(&server, "")).await;
    assert_eq!(plain["tables"]["items"][0]["name"], json!("koshary"), "no lang: as stored");

    let mut ws = WsClient::connect(&server.ws_url()).await;
    ws.send(json!({"type": "client:hello", "branchId": "fid", "lang": "en"})).await;
    let snap = ws.recv_type("server:snapshot").await;
    assert_eq!(snap["modules"]["fidelity"]["tables"]["items"][0]["name"], json!("Koshary"));
}

#[tokio::test]
async fn a_capped_page_says_so_and_the_cursor_walks_every_row_once() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start_with(data.path(), &["--max-page", "7"]).await;
    let url = server.module_url(s.branch, "/tables/menu_items");
    let mut seen = Vec::new();
    let mut next = url.clone();
    loop {
        let page = get_json(&next).await;
        let rows = page["rows"].as_array().unwrap();
        assert!(rows.len() <= 7, "the cap holds without a limit");
        seen.extend(rows.iter().map(|r| r["id"].clone()));
        if page["meta"]["hasMore"] == json!(false) {
            assert!(page["meta"]["next"].is_null());
            break;
        }
        assert_eq!(rows.len(), 7, "only a full page can have more");
        let after = page["meta"]["next"]["afterId"].as_str().expect("a cursor to continue");
        next = format!("{url}?afterId={after}");
    }
    let distinct: std::collections::BTreeSet<String> = seen.iter().map(Value::to_string).collect();
    assert_eq!((seen.len(), distinct.len()), (s.menu_items, s.menu_items));
    let asked = get_json(&format!("{url}?limit=1000")).await;
    assert_eq!(
        (asked["count"].clone(), asked["meta"]["hasMore"].clone()),
        (json!(7), json!(true)),
        "a limit over the cap"
    );
    let rest = s.menu_items - 7;
    let tail = get_json(&format!("{url}?limit={rest}&afterId={}", seen[6].as_str().unwrap())).await;
    assert_eq!(tail["count"], json!(rest.min(7)));
    let last_page = get_json(&format!("{url}?limit=3&afterId={}", seen[s.menu_items - 4].as_str().unwrap())).await;
    assert_eq!(
        (last_page["count"].clone(), last_page["meta"]["hasMore"].clone()),
        (json!(3), json!(false)),
        "exactly the last rows: nothing more"
    );
}

const SECRET: &str = "SECRET-7731";
const LOCKED: &str = "LOCKED-5512";

/// Every hidden-field spelling of the secrets this test configures.
fn hidden_keys(row: &Value) -> Vec<String> {
    let keys = ["pinCode", "pin_code", "phone"];
    row.as_object().map(|o| o.keys().filter(|k| keys.contains(&k.as_str())).cloned().collect()).unwrap_or_default()
}

#[tokio::test]
async fn secret_fields_and_locked_tables_leave_the_server_on_no_path() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(
        &data.path().join("security/secret_fields.json"),
        &json!({"secretFields": {"Employees": ["pinCode", "phone"]}, "lockedTables": ["audit_events", "user_sessions"]}),
    );
    let server = TestServer::start(data.path()).await;
    let b = s.branch;
    let employees = server.module_url(b, "/tables/employees");
    let audit = server.module_url(b, "/tables/audit_events");
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut keep = |path: &str, v: &Value| seen.push((path.to_owned(), v.to_string()));

    // Live listeners first, so they hear every write below.
    let (mut listener, snapshot) = WsClient::hello(&server.ws_url(), b).await;
    keep("ws snapshot", &snapshot);
    let head = snapshot["modules"]["pos"]["version"].as_u64().unwrap();
    listener.send(json!({"type": "subscribe", "topic": format!("sync:{b}::pos")})).await;
    keep("topic publish", &listener.recv_type("publish").await);

    // Writes on every path, each carrying the secrets.
    let row = json!({"id": "emp-secret", "fullName": "Secret Keeper", "role": "cashier",
                     "pinCode": format!("PIN-{SECRET}"), "phone": format!("PHONE-{SECRET}")});
    let (status, created) = post_json(&employees, json!({"record": row})).await;
    assert_eq!(status, 201, "secret fields stay writable: {created}");
    keep("REST insert", &created);
    let (status, patched) = send_json(
        Method::PATCH,
        &employees,
        json!({"record": {"id": "emp-secret", "pinCode": format!("PIN2-{SECRET}")}}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    keep("REST merge", &patched);
    let (_, saved) = send_json(
        Method::PUT,
        &employees,
        json!({"record": {"id": "emp-secret", "phone": format!("PHONE2-{SECRET}")}}),
    )
    .await;
    keep("REST save", &saved);
    let (_, saved_body) = post_json(
        &server.module_url(b, "/save"),
        json!({"table": "employees", "record": {"id": "emp-secret", "phone": format!("PHONE3-{SECRET}")}}),
    )
    .await;
    keep("REST module save", &saved_body);
    let (status, locked_write) =
        post_json(&audit, json!({"record": {"id": "audit-locked", "action": LOCKED, "payload": {"m": LOCKED}}})).await;
    assert_eq!(status, 201, "locked tables stay writable: {locked_write}");
    keep("REST insert into a locked table", &locked_write);
    let mut publisher = WsClient::connect(&server.ws_url()).await;
    publisher.send(json!({"type": "client:hello", "branchId": b, "requestSnapshot": false})).await;
    publisher
        .send(json!({"type": "client:publish", "moduleId": "pos", "table": "employees", "action": "module:merge",
                     "record": {"id": "emp-secret", "pinCode": format!("PIN3-{SECRET}")}, "requestId": "r1", "includeRecord": true}))
        .await;
    keep("WS ack with includeRecord", &publisher.recv_where("ack", |f| f["type"] == "server:ack").await);
    publisher
        .send(json!({"type": "client:publish", "moduleId": "pos", "table": "audit_events", "action": "module:insert",
                     "record": {"id": "audit-locked-ws", "action": LOCKED}, "requestId": "r2", "includeRecord": true}))
        .await;
    keep("WS ack of a locked table", &publisher.recv_where("ack", |f| f["requestId"] == "r2").await);
    publisher
        .send(json!({"type": "client:query", "moduleId": "pos", "table": "employees", "queryType": "list", "requestId": "q1"}))
        .await;
    keep("WS query list", &publisher.recv_type("server:query:result").await);
    publisher
        .send(json!({"type": "client:query", "moduleId": "pos", "table": "employees", "queryType": "get", "id": "emp-secret", "requestId": "q2"}))
        .await;
    let got = publisher.recv_type("server:query:result").await;
    assert_eq!(got["result"]["fullName"], json!("Secret Keeper"), "the row itself is served");
    keep("WS query get", &got);
    publisher
        .send(json!({"type": "client:query", "moduleId": "pos", "table": "employees", "queryType": "list",
                     "filter": {"pinCode": format!("PIN3-{SECRET}")}, "requestId": "q3"}))
        .await;
    let probe = publisher.recv_where("the probe's answer", |f| f["requestId"] == "q3").await;
    assert_eq!(
        (probe["type"].clone(), probe["code"].clone()),
        (json!("server:error"), json!("unknown-field")),
        "a hidden field cannot be probed by filtering on it: {probe}"
    );
    let (status, one) = get_status(&format!("{employees}/emp-secret")).await;
    assert_eq!(status, 200, "{one}");
    keep("REST one row", &one);
    let (status, locked_one) = get_status(&format!("{audit}/audit-locked")).await;
    assert_eq!(status, 403, "a locked table's row is not served by key: {locked_one}");
    keep("REST one row of a locked table", &locked_one);
    let (_, deleted) = send_json(Method::DELETE, &format!("{employees}?id=emp-secret"), Value::Null).await;
    keep("REST delete", &deleted);

    // Every event the listener got (and the publisher's own), then every read path.
    let events = listener.drain(std::time::Duration::from_millis(700)).await;
    assert!(events.iter().filter(|f| f["type"] == "server:event").count() >= 5, "{events:?}");
    assert!(!events.iter().any(|f| f["table"] == "audit_events"), "no event of a locked table is broadcast");
    for e in &events {
        keep("WS event", e);
    }
    for e in publisher.drain(std::time::Duration::from_millis(300)).await {
        keep("WS event to the publisher", &e);
    }
    let (mut late, delta) = {
        let mut c = WsClient::connect(&server.ws_url()).await;
        c.send(json!({"type": "client:hello", "branchId": b, "cursor": head})).await;
        let d = c.recv_type("server:delta").await;
        (c, d)
    };
    assert!(delta["tables"]["employees"].is_array(), "the delta carries the employee: {delta}");
    assert!(delta["tables"].get("audit_events").is_none() && delta["deleted"].get("audit_events").is_none());
    keep("WS delta", &delta);
    late.send(json!({"type": "client:request:snapshot", "requestId": "s1"})).await;
    keep("WS requested snapshot", &late.recv_type("server:snapshot").await);
    for (path, url) in [
        ("REST table list", employees.clone()),
        ("REST module snapshot", server.module_url(b, "")),
        ("REST branch snapshot", server.url(&format!("/api/branches/{}", urlencode(b)))),
        ("REST sync snapshot", server.url(&format!("/api/sync/{}/pos", urlencode(b)))),
        ("REST events", server.module_url(b, "/events?after=0&limit=5000")),
        ("REST first-sync pages", server.module_url(b, "/pages")),
    ] {
        keep(path, &get_json(&url).await);
    }
    let (_, rest_delta) =
        post_json(&server.url(&format!("/api/sync/{}/pos/delta", urlencode(b))), json!({"version": head})).await;
    keep("REST delta", &rest_delta);
    let (status, locked_list) = get_status(&audit).await;
    assert_eq!((status, locked_list["error"].clone()), (403, json!("table-locked")));

    for (path, text) in &seen {
        assert!(!text.contains(SECRET), "a secret field left the server via {path}: {text}");
        assert!(!text.contains(LOCKED), "a locked table's row left the server via {path}: {text}");
    }
    let snapshot = get_json(&server.module_url(b, "")).await;
    let seeded = snapshot["tables"]["employees"].as_array().unwrap();
    assert!(!seeded.is_empty(), "seeded employees are served");
    for e in seeded {
        assert!(hidden_keys(e).is_empty(), "seeded secrets are hidden too: {e}");
    }
    assert_eq!(snapshot["tables"]["audit_events"], json!([]), "a locked table is empty to clients");

    // Stored as written: the store has them.
    drop(server);
    let (locked, logged) = common::read_store(data.path(), b, "pos", |r, schema| {
        let audit = schema.table("audit_events").expect("the locked table");
        let row = r.row(audit, &mishkah_core::RecordKey("audit-locked".into())).expect("read").expect("stored");
        let pin = format!("PIN3-{SECRET}");
        let events = r.logged_after(0, usize::MAX >> 8).expect("read the log");
        (
            serde_json::to_string(&row).unwrap(),
            events.iter().filter(|l| format!("{:?}", l.event.change.row).contains(&pin)).count(),
        )
    });
    assert!(locked.contains(LOCKED));
    assert_eq!(logged, 1, "the event log keeps the secret value as written");
}
