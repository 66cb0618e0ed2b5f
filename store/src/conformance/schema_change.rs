//! A new schema against a module's stored rows: measured without changing the store, and a type
//! change under stored rows refused at open, naming the rows — the same on every backend.

use mishkah_core::Schema;
use serde_json::json;

use super::writes::insert;
use super::{row, simple_table, Harness};
use crate::schema_change::{Added, Retyped};
use crate::{Backend, OpenOptions};

pub fn measured_and_refused(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let table = simple_table();
    let n = harness.new_module();
    let never = harness.at(n, |at| backend.inspect(at, &[&table])).expect("inspect");
    assert_eq!(never, None, "a module never stored has nothing to measure");
    let mut opened = harness.at(n, |at| backend.open(at, &[&table], &OpenOptions::default())).expect("open");
    let mut tx = opened.writer.begin().expect("begin");
    for (id, n) in [("a", 0), ("b", 1), ("c", 7)] {
        insert(tx.ops(), &table, &row(id, n, id)).expect("write");
    }
    tx.commit().expect("commit");
    opened.writer.mark_initialized("2026-12-06T00:00:00.000Z").expect("mark initialized");
    drop(opened);

    let unchanged = harness.at(n, |at| backend.inspect(at, &[&table])).expect("inspect");
    assert_eq!(unchanged, Some(vec![]), "the same schema changes nothing");
    // `n` becomes a boolean (7 is none), `spicy` is added with a default, `name` dropped.
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "n", "type": "boolean"},
        {"name": "code", "type": "string", "unique": true},
        {"name": "spicy", "type": "boolean", "nullable": false, "defaultValue": false}]}]}}))
    .expect("a valid schema");
    let changed = schema.table("t").expect("table t");
    let impact = harness.at(n, |at| backend.inspect(at, &[changed])).expect("inspect").expect("stored");
    assert_eq!(impact.len(), 1);
    let impact = &impact[0];
    assert_eq!((impact.table.as_str(), impact.rows), ("t", 3));
    assert_eq!(impact.added, vec![Added { field: "spicy".into(), default: Some(json!(false)), lacking: 3 }]);
    assert_eq!(impact.dropped, vec!["name".to_string()]);
    let retyped = Retyped {
        field: "n".into(),
        from: "integer".into(),
        to: "boolean".into(),
        failing: 1,
        examples: vec!["c".into()],
    };
    assert_eq!(impact.retyped, vec![retyped]);

    let refused = harness.at(n, |at| backend.open(at, &[changed], &OpenOptions::default()));
    let error = refused.err().expect("a type change under stored rows is refused");
    assert_eq!(error.code(), "destructive-migration");
    assert!(error.to_string().contains("1 of the 3 stored rows hold values it refuses (keys c)"), "{error}");
    let reopened = harness.at(n, |at| backend.open(at, &[&table], &OpenOptions::default())).expect("reopen as stored");
    let rows = super::read(&*reopened.reads, |r| r.rows(&table));
    assert_eq!(rows.len(), 3, "nothing was lost");
}
