//! The filter language over REST (`?filter=`, `/count`), against the real binary.

mod common;

use common::*;
use serde_json::{json, Value};

fn encode(filter: &str) -> String {
    let mut out = String::new();
    for b in filter.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[tokio::test]
async fn a_filter_selects_rows_counts_them_and_bad_ones_are_400_with_the_position() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(&data.path().join("security/secret_fields.json"), &json!({"secretFields": {"dining_tables": ["note"]}}));
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, name, seats) in [("q1", "حديقة الكشري", 6), ("q2", "Koshary corner", 2), ("q3", "Patio", 8)] {
        let (status, body) =
            post_json(&url, json!({"record": {"id": id, "name": name, "seats": seats, "note": "x"}})).await;
        assert_eq!(status, 201, "{body}");
    }
    let ids = |body: &Value| -> Vec<String> {
        body["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
    };
    let get = |filter: &str| {
        let target = format!("{url}?filter={}", encode(filter));
        async move { get_json(&target).await }
    };

    let mine = r#"id in ["q1", "q2", "q3"]"#;
    assert_eq!(ids(&get(&format!("{mine} && seats >= 6")).await), ["q1", "q3"]);
    assert_eq!(ids(&get(&format!("{mine} && name ~ \"KOSHARY\"")).await), ["q2"], "contains, any case");
    assert_eq!(ids(&get(&format!("{mine} && name ~ \"الكشري\"")).await), ["q1"]);
    assert_eq!(ids(&get(&format!("{mine} && !(seats < 6 || id = \"q3\")")).await), ["q1"]);
    assert_eq!(
        ids(&get(&format!("{mine} && @request.branch = \"{}\"", s.branch)).await).len(),
        3,
        "variables are bound"
    );
    let page = get_json(&format!("{url}?filter={}&limit=1", encode(mine))).await;
    assert_eq!((ids(&page), page["meta"]["hasMore"].clone()), (vec!["q1".to_owned()], json!(true)), "filters page");

    let count = get_json(&format!("{url}/count?filter={}", encode(&format!("{mine} && seats > 2")))).await;
    assert_eq!(count["count"], json!(2));
    let all = get_json(&format!("{url}/count")).await;
    assert!(all["count"].as_u64().unwrap() >= 3);

    let (status, bad) = get_status(&format!("{url}?filter={}", encode("seats >= && id = 1"))).await;
    assert_eq!((status, bad["error"].clone()), (400, json!("invalid-filter")), "{bad}");
    assert_eq!(bad["details"]["position"], json!(9), "{bad}");
    // A property the schema does not declare is read from the stored rows.
    let (status, undeclared) = get_status(&format!("{url}/count?filter={}", encode("colour = \"red\""))).await;
    assert_eq!((status, undeclared["count"].clone()), (200, json!(0)), "{undeclared}");
    let (status, hidden) = get_status(&format!("{url}?filter={}", encode("note = \"x\""))).await;
    assert_eq!(
        (status, hidden["error"].clone()),
        (400, json!("unknown-field")),
        "a hidden field cannot be probed: {hidden}"
    );
}

#[tokio::test]
async fn sorted_pages_continue_by_an_opaque_cursor_and_bad_sorts_are_400() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    let seats = [4, 2, 6, 2, 8, 4, 2];
    for (i, n) in seats.iter().enumerate() {
        let (status, body) = post_json(&url, json!({"record": {"id": format!("s{i}"), "name": "x", "seats": n}})).await;
        assert_eq!(status, 201, "{body}");
    }
    let mine = encode(r#"id ~ "s" && id !~ "seat""#);
    let mut walked = Vec::new();
    let mut next = format!("{url}?filter={mine}&sort=-seats,id&limit=3&fields=id,seats");
    loop {
        let page = get_json(&next).await;
        let rows = page["rows"].as_array().unwrap().clone();
        assert!(rows.iter().all(|r| r.as_object().unwrap().len() == 2), "fields=id,seats: {rows:?}");
        walked.extend(rows.iter().map(|r| (r["seats"].as_i64().unwrap(), r["id"].as_str().unwrap().to_owned())));
        let Some(after) = page["meta"]["next"]["after"].as_str() else { break };
        assert!(after.starts_with("mk1."), "{after}");
        assert!(page["meta"]["next"].get("afterId").is_none(), "a sorted page continues by cursor only");
        next = format!("{url}?filter={mine}&sort=-seats,id&limit=3&fields=id,seats&after={after}");
    }
    let mut expected: Vec<(i64, String)> =
        seats.iter().enumerate().map(|(i, n)| (*n as i64, format!("s{i}"))).collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let walked_mine: Vec<_> = walked.into_iter().filter(|(_, id)| id.len() == 2).collect();
    assert_eq!(walked_mine, expected);

    let first = get_json(&format!("{url}?filter={mine}&sort=seats&limit=1")).await;
    let cursor = first["meta"]["next"]["after"].as_str().unwrap().to_owned();
    let (status, wrong) = get_status(&format!("{url}?sort=-seats&after={cursor}")).await;
    assert_eq!((status, wrong["error"].clone()), (400, json!("invalid-cursor")), "a cursor belongs to its sort");
    let (status, bad) = get_status(&format!("{url}?sort=nothing")).await;
    assert_eq!((status, bad["error"].clone()), (400, json!("invalid-sort")));
    // The original's `after` (an id) still works.
    let (status, legacy) = get_status(&format!("{url}?after=s5&limit=1")).await;
    assert_eq!((status, legacy["rows"][0]["id"].clone()), (200, json!("s6")));
}

#[tokio::test]
async fn client_query_takes_the_same_filter_sort_and_cursor_over_websocket() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, seats) in [("w1", 3), ("w2", 9), ("w3", 5)] {
        post_json(&url, json!({"record": {"id": id, "name": "x", "seats": seats}})).await;
    }
    let (mut ws, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    let query = |request: &str, after: Option<&str>| {
        json!({"type": "client:query", "moduleId": "pos", "table": "dining_tables", "queryType": "list",
               "filter": r#"id in ["w1", "w2", "w3"] && seats > 3"#, "sort": "-seats", "limit": 1,
               "fields": ["id"], "after": after, "requestId": request})
    };
    ws.send(query("p1", None)).await;
    let first = ws.recv_where("page 1", |f| f["requestId"] == "p1").await;
    assert_eq!(first["result"], json!([{"id": "w2"}]), "{first}");
    let after = first["meta"]["next"]["after"].as_str().unwrap().to_owned();
    ws.send(query("p2", Some(&after))).await;
    let second = ws.recv_where("page 2", |f| f["requestId"] == "p2").await;
    assert_eq!((second["result"].clone(), second["meta"]["hasMore"].clone()), (json!([{"id": "w3"}]), json!(false)));
    ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "dining_tables",
                   "filter": r#"id in ["w1", "w2", "w3"]"#, "aggregate": {"sum": ["seats"], "max": ["seats"]}, "requestId": "agg"}))
        .await;
    let agg = ws.recv_where("the aggregate", |f| f["requestId"] == "agg").await;
    assert_eq!(agg["result"], json!([{"key": {}, "count": 3, "sum": {"seats": 17}, "max": {"seats": 9}}]), "{agg}");
    // The original's `{field: value}` still works, and a broken string names the position.
    ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "dining_tables", "filter": {"id": "w1"}, "requestId": "legacy"})).await;
    let legacy = ws.recv_where("legacy", |f| f["requestId"] == "legacy").await;
    assert_eq!(legacy["result"][0]["seats"], json!(3));
    ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "dining_tables", "filter": "seats >", "requestId": "bad"})).await;
    let bad = ws.recv_where("the error", |f| f["requestId"] == "bad" && f["type"] == "server:error").await;
    assert_eq!((bad["code"].clone(), bad["details"]["position"].clone()), (json!("invalid-filter"), json!(7)), "{bad}");
}

#[tokio::test]
async fn aggregates_group_count_and_measure_the_filtered_rows() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, seats) in [("a1", 2), ("a2", 4), ("a3", 4), ("a4", 6)] {
        post_json(&url, json!({"record": {"id": id, "name": "x", "seats": seats}})).await;
    }
    let mine = encode(r#"id in ["a1", "a2", "a3", "a4"]"#);
    let by_seats = get_json(&format!("{url}/aggregate?filter={mine}&groupBy=seats&sum=seats&min=id&max=id")).await;
    assert_eq!(
        by_seats["groups"],
        json!([
            {"key": {"seats": 2}, "count": 1, "sum": {"seats": 2}, "min": {"id": "a1"}, "max": {"id": "a1"}},
            {"key": {"seats": 4}, "count": 2, "sum": {"seats": 8}, "min": {"id": "a2"}, "max": {"id": "a3"}},
            {"key": {"seats": 6}, "count": 1, "sum": {"seats": 6}, "min": {"id": "a4"}, "max": {"id": "a4"}}
        ]),
        "{by_seats}"
    );
    let all = get_json(&format!("{url}/aggregate?filter={mine}&avg=seats")).await;
    assert_eq!(all["groups"], json!([{"key": {}, "count": 4, "avg": {"seats": 4.0}}]));
    let none = get_json(&format!("{url}/aggregate?filter={}&sum=seats", encode("id = \"nobody\""))).await;
    assert_eq!(none["groups"], json!([{"key": {}, "count": 0, "sum": {"seats": null}}]), "no rows: a count of 0");
    let (status, bad) = get_status(&format!("{url}/aggregate?avg=id")).await;
    assert_eq!((status, bad["error"].clone()), (400, json!("invalid-aggregate")), "{bad}");
}

#[tokio::test]
async fn search_finds_arabic_across_its_spellings_latin_across_case_and_accents_and_follows_writes() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    write_json(&data.path().join("security/secret_fields.json"), &json!({"secretFields": {"dining_tables": ["note"]}}));
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, name) in [("x1", "مطعم الكُشَري المصري"), ("x2", "Café Koshary"), ("x3", "فول وطعمية")]
    {
        let (status, body) =
            post_json(&url, json!({"record": {"id": id, "name": name, "seats": 4, "note": "SECRETWORD"}})).await;
        assert_eq!(status, 201, "{body}");
    }
    let found = |q: &'static str| {
        let target = format!("{url}/search?q={}", encode(q));
        async move {
            let body = get_json(&target).await;
            body["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["row"]["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("كشرى").await, ["x1"], "alef maqsura for ya, no tashkeel");
    assert_eq!(found("الكشري المصرى").await, ["x1"]);
    assert_eq!(found("مطع").await, ["x1"], "the last term is a prefix");
    assert_eq!(found("طعميه").await, ["x3"], "ta marbuta as ha");
    assert_eq!(found("KOSHARY").await, ["x2"]);
    assert_eq!(found("cafe kosh").await, ["x2"], "accents and case folded; prefix");
    assert!(found("secretword").await.is_empty(), "hidden fields are not searchable");
    let hit = get_json(&format!("{url}/search?q={}", encode("koshary"))).await;
    assert!(hit["hits"][0]["score"].as_f64().unwrap() > 0.0, "{hit}");
    assert!(hit["hits"][0]["row"].get("note").is_none(), "hits are rendered");
    let filtered = get_json(&format!("{url}/search?q={}&filter={}", encode("koshary"), encode("seats > 100"))).await;
    assert_eq!(filtered["count"], json!(0));

    // The index follows every write, in its transaction.
    let (status, _) = send_json(reqwest::Method::PATCH, &url, json!({"record": {"id": "x3", "name": "حمص"}})).await;
    assert_eq!(status, 200);
    assert!(found("طعمية").await.is_empty());
    assert_eq!(found("حمص").await, ["x3"]);
    send_json(reqwest::Method::DELETE, &format!("{url}?id=x3"), Value::Null).await;
    assert!(found("حمص").await.is_empty());

    // After a restart the index is kept by the write itself (it is not rebuilt on the next search).
    let mut server = server;
    server.kill();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    post_json(&url, json!({"record": {"id": "x4", "name": "شاورما", "seats": 2}})).await;
    let body = get_json(&format!("{url}/search?q={}", encode("شاورما"))).await;
    assert_eq!(body["hits"][0]["row"]["id"], json!("x4"), "{body}");
    assert!(!server.log().contains("indexed"), "no rebuild after the restart: {}", server.log());
}

#[tokio::test]
async fn rows_passed_through_unparsed_equal_the_rendered_ones() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for (id, seats) in [("pt1", 2), ("pt2", 4)] {
        let (status, body) = post_json(&url, json!({"record": {"id": id, "name": "طاولة", "seats": seats}})).await;
        assert_eq!(status, 201, "{body}");
    }
    let filter = r#"id in ["pt1", "pt2"]"#;
    // REST sends stored documents as they are (nothing to hide or translate); the WebSocket
    // query renders them: the same rows either way.
    let rest = get_json(&format!("{url}?filter={}&sort=-seats", encode(filter))).await;
    let (mut ws, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    ws.send(json!({"type": "client:query", "moduleId": "pos", "table": "dining_tables", "filter": filter,
                   "sort": "-seats", "requestId": "q"}))
        .await;
    let answer = ws.recv_where("the query", |f| f["requestId"] == "q").await;
    assert_eq!(rest["rows"], answer["result"], "{rest}");
    assert_eq!(rest["rows"].as_array().unwrap().len(), 2);
    assert_eq!(rest["count"], json!(2));
    assert_eq!(rest["rows"][0]["id"], json!("pt2"));
}

#[tokio::test]
async fn a_filter_too_large_for_the_database_is_a_clear_400_on_every_path() {
    let data = DataCopy::new();
    let s = data.scenario.clone();
    let server = TestServer::start(data.path()).await;
    let huge = (0..3000).map(|i| format!("seats = {i}")).collect::<Vec<_>>().join(" || ");
    let url = server.module_url(s.branch, "/tables/dining_tables");
    for route in [url.clone(), format!("{url}/count")] {
        let r = reqwest::Client::new().get(&route).query(&[("filter", huge.as_str())]).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid-filter")), "{route}: {body}");
    }
    let (mut ws, _) = WsClient::hello(&server.ws_url(), s.branch).await;
    ws.send(json!({"type": "client:query", "requestId": "big", "moduleId": "pos", "table": "dining_tables", "filter": huge}))
        .await;
    let answer = ws.recv_where("the answer", |f| f["requestId"] == "big").await;
    assert_eq!(answer["code"], "invalid-filter", "{answer}");
    // A filter within the bound still runs.
    let fine = (0..400).map(|i| format!("seats = {i}")).collect::<Vec<_>>().join(" || ");
    let r = reqwest::Client::new().get(&url).query(&[("filter", fine.as_str())]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}
