//! Reading a page through the filter language's SQL (no network): 100,000 rows of an
//! `order_header`-like table with an index on `statusId`; a filtered, sorted page of 50 on typed
//! columns; the same filter counted; a filter only the core's comparison can answer (a path into
//! a JSON field, case-insensitive), which stops at 50 matches or reads every row.

use criterion::{criterion_group, criterion_main, Criterion};
use mishkah_core::query::Filter;
use mishkah_core::{Change, ChangeKind, RecordKey, Schema};
use mishkah_server::storage::{Durability, ModuleRead, ModuleWriter, PageQuery};
use mishkah_store_sqlite::{ModuleDb, ModuleReader};
use serde_json::json;

const ROWS: usize = 100_000;

fn bench_pages(c: &mut Criterion) {
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "orders", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "statusId", "columnName": "status_id", "type": "string", "index": true},
        {"name": "total", "type": "decimal", "index": true},
        {"name": "name", "type": "json"}]}]}}))
    .unwrap();
    let table = schema.table("orders").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite3");
    let (mut db, _) = ModuleDb::open(&path, &[&table], Durability::Normal).unwrap();
    let mut tx = db.begin().unwrap();
    let statuses = ["open", "paid", "void", "cooking", "ready", "served", "closed", "held", "sent", "new"];
    for i in 0..ROWS {
        let row = json!({"id": format!("o-{i:06}"), "statusId": statuses[i % 10], "total": (i % 997) as f64 / 2.0,
                         "name": {"en": if i % 50 == 0 { "Koshary" } else { "Falafel" }, "ar": "طلب"}});
        let row = row.as_object().unwrap().clone();
        let change = Change {
            table: "orders".into(),
            key: RecordKey::of(&table, &row).unwrap(),
            kind: ChangeKind::Insert,
            row: Some(row),
            version: 1,
            coerced: vec![],
            unknown_fields: vec![],
            tolerated: Vec::new(),
        };
        tx.ops().store_change(&table, &change).unwrap();
    }
    tx.commit().unwrap();
    let reader = ModuleReader::open(&path).unwrap();
    let query = |filter: &str, sort: Vec<(String, bool)>| PageQuery {
        after_key: None,
        created_after: None,
        updated_after: None,
        descending: false,
        limit: 51,
        filter: Some(Filter::parse(filter).unwrap()),
        sort,
        after: None,
    };
    let mut group = c.benchmark_group("read_page_100k_rows");
    group.sample_size(20);
    let typed = query(r#"statusId = "open" && total > 100"#, vec![("total".into(), true)]);
    group.bench_function("typed_filter_sorted_page_of_50", |b| b.iter(|| reader.page(&table, &typed).unwrap().len()));
    let indexed = query(r#"statusId = "open""#, vec![]);
    group.bench_function("indexed_equality_page_of_50", |b| b.iter(|| reader.page(&table, &indexed).unwrap().len()));
    let count = Filter::parse(r#"statusId = "open""#).unwrap();
    group.bench_function("count_indexed_equality", |b| b.iter(|| reader.count_where(&table, &count).unwrap()));
    let core = query(r#"name.en ~ "kosh""#, vec![]);
    group.bench_function("json_path_contains_page_of_50", |b| b.iter(|| reader.page(&table, &core).unwrap().len()));
    let scan = query(r#"name.en ~ "shawarma""#, vec![]);
    group.bench_function("json_path_contains_no_match_reads_all", |b| {
        b.iter(|| reader.page(&table, &scan).unwrap().len())
    });
    group.finish();
}

criterion_group!(benches, bench_pages);
criterion_main!(benches);
