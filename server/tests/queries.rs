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
    let (status, unknown) = get_status(&format!("{url}/count?filter={}", encode("colour = \"red\""))).await;
    assert_eq!((status, unknown["error"].clone()), (400, json!("unknown-field")), "{unknown}");
    let (status, hidden) = get_status(&format!("{url}?filter={}", encode("note = \"x\""))).await;
    assert_eq!(
        (status, hidden["error"].clone()),
        (400, json!("unknown-field")),
        "a hidden field cannot be probed: {hidden}"
    );
}
