//! Every schema of the real data parses, and every seed row validates against its module schema.
//! Prints the report the core issue asks for (rows coerced, rows rejected and why).

use std::collections::BTreeMap;
use std::path::Path;

use mishkah_core::mutation::ApplyContext;
use mishkah_core::record::{validate, Strictness};
use mishkah_core::{apply, Action, Mutation, Schema, Timestamp, VersionPolicy};
use mishkah_test_support::{data_source, json_files};
use serde_json::Value;

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn is_schema(doc: &Value) -> bool {
    doc.get("tables")
        .is_some_and(|t| t.is_array() || t.as_object().is_some_and(|o| o.values().all(|v| v.get("fields").is_some())))
        || doc.get("schema").is_some_and(|s| s.get("tables").is_some())
}

#[test]
fn every_schema_file_parses_into_tables_with_keys() {
    let source = data_source();
    let mut parsed = 0;
    for path in json_files(&source.dir) {
        let doc = read(&path);
        if !is_schema(&doc) {
            continue;
        }
        let schema = Schema::from_json(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!schema.tables.is_empty(), "{} has no tables", path.display());
        for table in schema.tables.values() {
            assert!(!table.key_fields().is_empty());
            assert!(!table.fields.is_empty(), "{}: {} has no fields", path.display(), table.name);
        }
        eprintln!("{}: {} tables, {} warnings", path.display(), schema.tables.len(), schema.warnings.len());
        for w in &schema.warnings {
            eprintln!("  warning: {}.{}: {}", w.table, w.field.as_deref().unwrap_or("-"), w.message);
        }
        parsed += 1;
    }
    // The real data holds the designer and SQL-column formats (the compact one only appears in the
    // original's documentation; its unit tests cover it); our own data/ holds all three.
    let expected = if source.real { 2 } else { 3 };
    assert!(parsed >= expected, "expected at least {expected} schema files, found {parsed}");
}

#[derive(Default, Debug)]
struct Report {
    rows: usize,
    accepted: usize,
    coerced_rows: usize,
    coerced_by_field: BTreeMap<String, usize>,
    tolerated_by_field: BTreeMap<String, usize>,
    rejected: Vec<String>,
    unmapped_tables: Vec<String>,
}

fn validate_seed(schema: &Schema, seed: &Value) -> Report {
    let mut report = Report::default();
    let policy = VersionPolicy::default();
    let ctx = ApplyContext { strictness: Strictness::Import, ..ApplyContext::new(Timestamp(0), &policy) };
    for (name, rows) in seed["tables"].as_object().unwrap() {
        let Some(rows) = rows.as_array() else {
            report.unmapped_tables.push(format!("{name} (not a row list)"));
            continue;
        };
        let Some(table) = schema.resolve_table(name) else {
            report.unmapped_tables.push(format!("{name} ({} rows, no such table)", rows.len()));
            continue;
        };
        for row in rows {
            report.rows += 1;
            let m = Mutation::new(&table.name, Action::Insert, row.clone());
            match apply(table, None, &m, &ctx) {
                Ok(change) => {
                    report.accepted += 1;
                    let fresh = validate(table, m.record.clone(), Strictness::Import).unwrap();
                    if !change.coerced.is_empty() {
                        report.coerced_rows += 1;
                    }
                    for f in change.coerced {
                        *report.coerced_by_field.entry(format!("{}.{f}", table.name)).or_default() += 1;
                    }
                    for e in fresh.tolerated {
                        *report.tolerated_by_field.entry(format!("{}.{}", table.name, e.field)).or_default() += 1;
                    }
                }
                Err(e) => report.rejected.push(format!("{}: {} ({})", table.name, e, e.code())),
            }
        }
    }
    report
}

#[test]
fn every_seed_row_validates_against_its_schema() {
    let source = data_source();
    let (schema_path, seeds): (_, Vec<_>) = if source.real {
        (
            source.dir.join("schemas/pos_schema.json"),
            vec![
                source.dir.join("branches/dar/modules/pos/seeds/initial.json"),
                source.dir.join("branches/remal/modules/pos/seeds/initial.json"),
            ],
        )
    } else {
        (source.dir.join("schemas/pos_schema.json"), vec![source.dir.join("seeds/pos_demo.json")])
    };
    let schema = Schema::from_json(&read(&schema_path)).unwrap();
    for seed_path in seeds {
        let report = validate_seed(&schema, &read(&seed_path));
        eprintln!("{}: {report:#?}", seed_path.display());
        assert_eq!(report.accepted + report.rejected.len(), report.rows);
        assert!(report.rows > 0);
        if source.real {
            // The real seeds predate the schema: their rows use other property names, so required
            // fields are reported (tolerated on import), never silently invented; no row is refused.
            assert!(report.rejected.is_empty(), "{:?}", report.rejected);
            assert!(report.unmapped_tables.iter().any(|t| t.starts_with("settings")));
        } else {
            assert!(report.rejected.is_empty() && report.tolerated_by_field.is_empty(), "{report:#?}");
        }
    }
}

#[test]
fn the_real_dar_seed_has_94_menu_items() {
    let source = data_source();
    if !source.real {
        eprintln!("skipped: fixture-only fact");
        return;
    }
    let seed = read(&source.dir.join("branches/dar/modules/pos/seeds/initial.json"));
    assert_eq!(seed["tables"]["menu_items"].as_array().unwrap().len(), 94);
}
