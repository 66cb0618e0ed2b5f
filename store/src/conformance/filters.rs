//! Filters, sorts and keyset cursors compiled by a backend select exactly the rows the core's
//! evaluator selects, in the core's order (property tests over random tables, rows and filters).

use mishkah_core::query::{compare_values, field_value, Bindings, Filter};
use mishkah_core::{ChangeKind, RecordKey, Row, Table};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use super::random::{case, rows_of, spec, table_of, Spec};
use super::{change, read, Harness};
use crate::{Backend, ModuleReads, PageQuery};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() })
}

/// Stores the rows of `spec` (in order `r0`, `r1`...) in a new module; returns its readers, the
/// table and the rows as read back.
fn stored(harness: &Harness<'_>, spec: &Spec) -> (Box<dyn ModuleReads>, Table, Vec<Row>) {
    let table = table_of(spec);
    let rows = rows_of(spec, &table);
    stored_rows(harness, table, &rows)
}

fn stored_rows(harness: &Harness<'_>, table: Table, rows: &[Row]) -> (Box<dyn ModuleReads>, Table, Vec<Row>) {
    let opened = harness.open(&[&table]);
    let mut writer = opened.writer;
    let mut tx = writer.begin().expect("begin");
    for row in rows {
        let key = RecordKey::of(&table, row).expect("a key");
        let c = mishkah_core::Change { key, ..change(ChangeKind::Insert, "", Some(row.clone()), 1) };
        tx.ops().store_change(&table, &c).expect("store");
    }
    tx.commit().expect("commit");
    let back = read(&*opened.reads, |r| r.rows(&table));
    (opened.reads, table, back)
}

fn page(
    filter: Option<Filter>,
    sort: Vec<(String, bool)>,
    after: Option<(Vec<Value>, String)>,
    limit: usize,
) -> PageQuery {
    PageQuery { limit, filter, sort, after, ..PageQuery::default() }
}

/// The rows a filter selects, and how many it counts, are the rows the evaluator lets through.
pub fn select_what_the_core_selects(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    runner(96)
        .run(&case(), |(spec, filters)| {
            let expected_rows = rows_of(&spec, &table_of(&spec));
            let (reads, table, stored) = stored(&harness, &spec);
            prop_assert_eq!(&stored, &expected_rows, "rows come back as stored");
            for f in filters {
                let f = f.normalize();
                let expected: Vec<&Value> = stored
                    .iter()
                    .filter(|r| f.eval_in(Some(&table), r, &Bindings::default()))
                    .map(|r| &r["id"])
                    .collect();
                let (got, counted) = read(&*reads, |r| {
                    Ok((
                        r.page(&table, &page(Some(f.clone()), vec![], None, usize::MAX >> 2))?,
                        r.count_where(&table, &f)?,
                    ))
                });
                let got: Vec<&Value> = got.iter().map(|r| &r["id"]).collect();
                prop_assert_eq!(&got, &expected, "filter `{}` over {:?}", f, stored);
                prop_assert_eq!(counted as usize, expected.len());
                // Walked two at a time after the last key, oldest or newest first.
                for descending in [false, true] {
                    let mut walked = Vec::new();
                    let mut after_key = None;
                    loop {
                        let q = PageQuery {
                            after_key: after_key.clone(),
                            descending,
                            ..page(Some(f.clone()), vec![], None, 2)
                        };
                        let got = read(&*reads, |r| r.page(&table, &q));
                        after_key = got.last().and_then(|r| r["id"].as_str()).map(str::to_owned);
                        walked.extend(got.iter().map(|r| r["id"].clone()));
                        if got.len() < 2 {
                            break;
                        }
                    }
                    let mut want: Vec<Value> = expected.iter().map(|v| (*v).clone()).collect();
                    if descending {
                        want.reverse();
                    }
                    prop_assert_eq!(walked, want, "filter `{}` in pages, descending {}", f, descending);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// `~` and `!~` fold case as Rust's `to_lowercase` (Greek final sigma, the Kelvin sign, a dotted
/// capital I), find nothing in a null or missing value, and find a string in an array stored as
/// sent — in pages, counts and aggregates alike, on a column that holds only text and nulls
/// (`label`), on one that also holds values stored as sent (`name`), and through a path into a
/// JSON field (`title.en`, with `=` too).
pub fn contains_decides_as_the_core(backend: &dyn Backend) {
    use mishkah_core::query::{Op, Operand};
    use serde_json::json;
    let harness = Harness::new(backend);
    let schema = mishkah_core::Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
        {"name": "id", "type": "string", "primaryKey": true},
        {"name": "name", "type": "string"},
        {"name": "label", "type": "string", "columnName": "label_col"},
        {"name": "zone", "type": "string"},
        {"name": "title", "type": "json"}]}]}}))
    .expect("schema");
    let table = schema.table("t").expect("t").clone();
    let texts = ["ΟΔΟΣ", "\u{212A}elvin", "İstanbul", "Koshary", "كشري", "a\u{0}b", "", "x"];
    let misfits = [json!(["ος", 1]), json!(5), json!(["x", "\u{0}"]), json!({"en": "x"})];
    let rows: Vec<Row> = (0..14)
        .map(|i| {
            let mut row = Row::new();
            row.insert("id".into(), Value::from(format!("r{i:02}")));
            row.insert("zone".into(), Value::from(if i % 2 == 0 { "a" } else { "b" }));
            let text = texts.get(i).map(|t| Value::from(*t));
            // The label: text, null, or missing; under its column's name for one row.
            match (i, &text) {
                (3, Some(t)) => drop(row.insert("label_col".into(), t.clone())),
                (_, Some(t)) => drop(row.insert("label".into(), t.clone())),
                (8 | 9, None) => drop(row.insert("label".into(), Value::Null)),
                _ => {}
            }
            // The title: the text under `en`, or other shapes a path finds nothing (or an array) in.
            match (i, &text) {
                (_, Some(t)) => drop(row.insert("title".into(), json!({"en": t, "ar": "عربي"}))),
                (8, None) => drop(row.insert("title".into(), json!({"en": ["ος", "x"]}))),
                (9, None) => drop(row.insert("title".into(), json!("Koshary"))),
                (10, None) => drop(row.insert("title".into(), json!({"en": "say \"x\"\n"}))),
                _ => {}
            }
            // The name: the same text, or a value of another kind.
            match (i, text) {
                (_, Some(t)) => drop(row.insert("name".into(), t)),
                (10..=13, None) => drop(row.insert("name".into(), misfits[i - 10].clone())),
                _ => {}
            }
            row
        })
        .collect();
    let (reads, table, stored) = stored_rows(&harness, table, &rows);
    assert_eq!(stored, rows, "rows come back as stored");
    let needles = ["ος", "k", "K", "İ", "i\u{307}", "ς", "", "كش", "x", "ΟΣ", "\u{0}", "a\u{0}", "5", "en"];
    let fields: [&[&str]; 3] = [&["name"], &["label"], &["title", "en"]];
    for path in fields {
        for needle in needles.iter().chain(&["Koshary", "\"x\"", "say \"x\"\n"]) {
            for op in [Op::Contains, Op::NotContains, Op::Eq] {
                let path: Vec<String> = path.iter().map(|p| p.to_string()).collect();
                let f = Filter::compare(Operand::Field(path), op, Operand::Value(Value::from(*needle)));
                let expected: Vec<&Value> = stored
                    .iter()
                    .filter(|r| f.eval_in(Some(&table), r, &Bindings::default()))
                    .map(|r| &r["id"])
                    .collect();
                let (got, counted, groups) = read(&*reads, |r| {
                    Ok((
                        r.page(&table, &page(Some(f.clone()), vec![], None, 100))?,
                        r.count_where(&table, &f)?,
                        r.aggregate(&table, &f, &["zone".to_owned()], &[])?,
                    ))
                });
                let got: Vec<&Value> = got.iter().map(|r| &r["id"]).collect();
                assert_eq!(got, expected, "{f}");
                assert_eq!(counted as usize, expected.len(), "count of {f}");
                let grouped: u64 = groups.iter().map(|g| g.count).sum();
                assert_eq!(grouped as usize, expected.len(), "groups of {f}");
            }
        }
    }
}

/// Sorted pages walked by keyset cursor give every row once, in the core's order of values
/// (nulls first ascending, last descending), insertion order breaking ties.
pub fn cursors_walk_the_sorted_order_once(backend: &dyn Backend) {
    let harness = Harness::new(backend);
    let strategy = (spec(), prop::collection::vec((0..4usize, any::<bool>()), 1..3), 1..4usize);
    runner(96)
        .run(&strategy, |(mut spec, keys, size)| {
            // Values stored as sent have no order among the field's values worth promising.
            for row in &mut spec.rows {
                for cell in row.iter_mut().filter(|c| c.0 == 4) {
                    cell.0 = 2;
                }
            }
            let table = table_of(&spec);
            // Sortable fields only (the routes refuse the others).
            let sort: Vec<(String, bool)> = keys
                .into_iter()
                .map(|(i, desc)| (format!("f{}", i % spec.fields.len()), desc))
                .filter(|(f, _)| crate::layout::sortable(&table, f))
                .collect();
            if sort.is_empty() {
                return Ok(());
            }
            let (reads, table, rows) = stored(&harness, &spec);
            let mut expected = rows.clone();
            expected.sort_by(|a, b| {
                for (f, desc) in &sort {
                    let path = [f.clone()];
                    let o = compare_values(field_value(Some(&table), a, &path), field_value(Some(&table), b, &path));
                    let o = if *desc { o.reverse() } else { o };
                    if o != std::cmp::Ordering::Equal {
                        return o;
                    }
                }
                // Ties in insertion order (rows are stored r0, r1, ...), in the last key's direction.
                let position = |r: &Row| r["id"].as_str().and_then(|id| id[1..].parse::<usize>().ok());
                let o = position(a).cmp(&position(b));
                if sort.last().is_some_and(|(_, desc)| *desc) {
                    o.reverse()
                } else {
                    o
                }
            });
            let mut walked = Vec::new();
            let mut after = None;
            loop {
                let got = read(&*reads, |r| r.page(&table, &page(None, sort.clone(), after.take(), size)));
                let Some(last) = got.last() else { break };
                let values = sort
                    .iter()
                    .map(|(f, _)| field_value(Some(&table), last, std::slice::from_ref(f)).clone())
                    .collect();
                after = Some((values, last["id"].as_str().unwrap_or_default().to_owned()));
                walked.extend(got.iter().map(|r| r["id"].clone()));
                prop_assert!(walked.len() <= rows.len(), "a cursor never repeats rows");
            }
            let expected: Vec<Value> = expected.iter().map(|r| r["id"].clone()).collect();
            prop_assert_eq!(walked, expected, "sort {:?}", sort);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
