//! SQLite's plans: filters and sorts on indexed fields are served by their index.

use mishkah_core::query::Filter;
use mishkah_core::Schema;
use mishkah_store::{Durability, ModuleRead, PageQuery};
use mishkah_store_sqlite::{ModuleDb, ModuleReader};
use serde_json::json;

fn page(filter: Option<Filter>, sort: Vec<(String, bool)>, limit: usize) -> PageQuery {
    PageQuery { limit, filter, sort, ..PageQuery::default() }
}

/// A table `orders` with `fields` (after its key), created in a new database; its reader.
fn orders_with(fields: serde_json::Value) -> (tempfile::TempDir, mishkah_core::Table, ModuleReader) {
    let mut all = vec![json!({"name": "id", "type": "string", "primaryKey": true})];
    all.extend(fields.as_array().cloned().unwrap_or_default());
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "orders", "fields": all}]}})).unwrap();
    let table = schema.table("orders").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.sqlite3");
    ModuleDb::open(&path, &[&table], Durability::Normal).unwrap();
    let reader = ModuleReader::open(&path).unwrap();
    (dir, table, reader)
}

/// Filters and sorts on indexed fields are served by their index; what the typed columns cannot
/// answer scans (and says so in the plan).
#[test]
fn indexed_filters_and_sorts_use_the_index() {
    let (_dir, table, reader) = orders_with(json!([
        {"name": "statusId", "columnName": "status_id", "type": "string", "index": true},
        {"name": "total", "type": "decimal", "index": true},
        {"name": "name", "type": "json"}]));
    let plan = |filter: &str, sort: Vec<(String, bool)>| {
        reader.page_plan(&table, &page(Some(Filter::parse(filter).unwrap()), sort, 50)).unwrap().join(" | ")
    };
    let by_status = plan(r#"statusId = "open""#, vec![]);
    assert!(by_status.contains("USING INDEX i_t_orders_status_id"), "{by_status}");
    let in_list = plan(r#"statusId in ["open", "paid"]"#, vec![]);
    assert!(in_list.contains("USING INDEX i_t_orders_status_id"), "{in_list}");
    let sorted = plan(r#"total > 10"#, vec![("total".into(), true)]);
    assert!(sorted.contains("i_t_orders_total") && !sorted.contains("TEMP B-TREE"), "sorted by the index: {sorted}");
    let scan = plan(r#"name.en ~ "kosh""#, vec![]);
    assert!(scan.starts_with("SCAN"), "{scan}");
}

/// A grouped aggregate under a filter the index cannot answer scans the table once (and sorts
/// the groups) instead of walking the grouping index and fetching every row from it; a filter
/// the index answers still uses it, and no filter walks the index alone.
#[test]
fn a_filtered_aggregate_does_not_walk_the_grouping_index_row_by_row() {
    let (_dir, table, reader) = orders_with(json!([
        {"name": "statusId", "columnName": "status_id", "type": "string", "index": true},
        {"name": "shiftId", "type": "string"}]));
    let plan = |filter: &str| {
        let f = Filter::parse(filter).unwrap();
        reader.aggregate_plan(&table, &f, &["statusId".to_owned()]).unwrap().join(" | ")
    };
    let contains = plan(r#"shiftId ~ "ft-01""#);
    assert!(contains.starts_with("SCAN t_orders") && !contains.contains("INDEX"), "{contains}");
    let by_status = plan(r#"statusId = "open""#);
    assert!(by_status.contains("INDEX i_t_orders_status_id (status_id=?)"), "{by_status}");
    let everything = reader.aggregate_plan(&table, &Filter::And(vec![]), &["statusId".to_owned()]).unwrap().join(" | ");
    assert!(everything.contains("COVERING INDEX i_t_orders_status_id") && !everything.contains("TEMP"), "{everything}");
}
