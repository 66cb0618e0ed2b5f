//! Property: in fill mode an insert never fails for a missing field. For random tables (every
//! field type, nullable or not, defaults, enums, text or numeric keys) and any subset of their
//! fields present (absent, `null` and `""` counting as missing), `fill_key` + `apply` stores a row
//! that has every schema field, and only invalid values (never absence) can refuse it.

use mishkah_core::mutation::ApplyContext;
use mishkah_core::record::{fill_key, is_missing, MissingFields};
use mishkah_core::{apply, Action, Mutation, RecordKey, Schema, Timestamp, VersionPolicy};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const TYPES: [&str; 8] = ["text", "integer", "decimal", "boolean", "json", "timestamp", "date", "string"];

#[derive(Debug, Clone)]
struct FieldSpec {
    ty: usize,
    nullable: bool,
    default: bool,
    with_enum: bool,
    /// 0 absent, 1 null, 2 "", 3 a valid value.
    presence: u8,
}

fn valid(ty: &str, seed: u8) -> Value {
    match ty {
        "text" | "string" => json!(format!("v{seed} عربي")),
        "integer" => json!(seed as i64 - 3),
        "decimal" => json!(seed as f64 / 4.0),
        "boolean" => json!(seed.is_multiple_of(2)),
        "json" => json!({"ar": "اسم", "en": format!("n{seed}")}),
        "timestamp" => json!("2025-12-06T14:22:20.349Z"),
        _ => json!("2025-12-06"),
    }
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    (0..TYPES.len(), any::<bool>(), any::<bool>(), any::<bool>(), 0..4u8).prop_map(
        |(ty, nullable, default, with_enum, presence)| FieldSpec { ty, nullable, default, with_enum, presence },
    )
}

/// A compact-format schema of one table `t`, and an insert of the present fields.
fn case(numeric_key: bool, key_present: bool, fields: &[FieldSpec], names: &[bool]) -> (Schema, Map<String, Value>) {
    let mut defs = Map::new();
    defs.insert("id".into(), json!({"type": if numeric_key { "integer" } else { "text" }, "primaryKey": true}));
    let mut record = Map::new();
    if key_present {
        record.insert("id".into(), if numeric_key { json!(42) } else { json!("k1") });
    }
    for (i, f) in fields.iter().enumerate() {
        let ty = TYPES[f.ty];
        // Names ending in `At` exercise the original's time-stamping rule.
        let name = if names.get(i).copied().unwrap_or(false) { format!("f{i}At") } else { format!("f{i}") };
        let mut def = json!({"type": ty, "nullable": f.nullable});
        let is_text = matches!(ty, "text" | "string");
        if f.with_enum && is_text {
            def["enum"] = json!([valid(ty, 1), valid(ty, 2)]);
        }
        if f.default {
            def["defaultValue"] = valid(ty, 1);
        }
        defs.insert(name.clone(), def);
        match f.presence {
            1 => {
                record.insert(name, Value::Null);
            }
            2 => {
                record.insert(name, json!(""));
            }
            3 => {
                record.insert(name, valid(ty, if f.with_enum && is_text { 2 } else { i as u8 }));
            }
            _ => {}
        }
    }
    (Schema::from_json(&json!({"tables": {"t": {"fields": defs}}})).unwrap(), record)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fill_mode_never_refuses_a_missing_field(
        numeric_key in any::<bool>(),
        key_present in any::<bool>(),
        fields in prop::collection::vec(field_spec(), 0..12),
        names in prop::collection::vec(any::<bool>(), 0..12),
        insert_or_save in any::<bool>(),
    ) {
        let (schema, mut record) = case(numeric_key, key_present, &fields, &names);
        let table = schema.table("t").unwrap();
        fill_key(table, &mut record, "0f3a9c2e-71b4-4c1d-9a55-d0c3b0e1f2a4");
        let key = RecordKey::of(table, &record);
        prop_assert!(key.is_ok(), "a filled key is a key");
        let policy = VersionPolicy::default();
        let ctx = ApplyContext::new(Timestamp(1_765_030_940_349), &policy).on_branch("dar");
        let action = if insert_or_save { Action::Insert } else { Action::Save };
        let change = apply(table, None, &Mutation::new("t", action, Value::Object(record.clone())), &ctx);
        let change = match change {
            Ok(c) => c,
            Err(e) => return Err(TestCaseError::fail(format!("refused: {e}"))),
        };
        let row = change.row.unwrap();
        for field in &table.fields {
            let value = row.get(&field.name);
            prop_assert!(value.is_some(), "every schema field is stored: {}", field.name);
            // Required text may hold `""`: the type's default, exactly as the original stored it.
            prop_assert!(field.nullable || value.is_some_and(|v| !v.is_null()), "a required field is filled: {}", field.name);
        }
        // Present values are never replaced by a default.
        for (k, v) in &record {
            if !is_missing(Some(v)) {
                let stored = &row[k];
                prop_assert!(stored == v || k.ends_with("At") || stored.is_number(), "{k}: {v} became {stored}");
            }
        }
        // The same inputs give the same row: nothing but the caller's clock and id goes in.
        let again = apply(table, None, &Mutation::new("t", action, Value::Object(record)), &ctx).unwrap();
        prop_assert_eq!(again.row.unwrap(), row);
    }

    #[test]
    fn refuse_mode_refuses_exactly_the_missing_required_fields(
        fields in prop::collection::vec(field_spec(), 1..10),
    ) {
        let (schema, record) = case(false, true, &fields, &[]);
        let table = schema.table("t").unwrap();
        let policy = VersionPolicy::default();
        let ctx = ApplyContext { missing: MissingFields::Refuse, ..ApplyContext::new(Timestamp(0), &policy) };
        let expected: Vec<String> = table
            .fields
            .iter()
            .filter(|f| !f.nullable && f.default.is_none() && !f.is_system() && !f.primary_key)
            .filter(|f| matches!(record.get(&f.name), None | Some(Value::Null)))
            .map(|f| f.name.clone())
            .collect();
        // `""` is a present (if empty) value in refuse mode: text keeps it, other types refuse it as a type error.
        match apply(table, None, &Mutation::new("t", Action::Insert, Value::Object(record)), &ctx) {
            Ok(_) => prop_assert!(expected.is_empty()),
            Err(mishkah_core::MutationError::Validation(v)) => {
                let required: Vec<String> = v.errors.iter().filter(|e| e.rule == "required").map(|e| e.field.clone()).collect();
                prop_assert_eq!(required, expected);
            }
            Err(e) => return Err(TestCaseError::fail(format!("unexpected: {e}"))),
        }
    }
}
