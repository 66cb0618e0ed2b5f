//! Random tables, rows and filters: every field kind, fields stored under their name or their
//! column, values, nulls, missing fields, values of another kind stored as sent, properties outside
//! the schema, Arabic text.

use mishkah_core::query::{Filter, Op, Operand};
use mishkah_core::{Row, Schema, Table};
use proptest::prelude::*;
use serde_json::{json, Value};

const KINDS: [&str; 6] = ["string", "integer", "decimal", "boolean", "timestamp", "json"];
const TEXTS: [&str; 10] = ["كشري", "كُشَري", "Koshary", "koshary", "", "a", "ب", "ΟΔΟΣ", "ος", "\u{212A}İ"];
const NUMBERS: [f64; 6] = [0.0, 1.0, 1.5, -2.0, 3.0, 1e15];
const TIMES: [&str; 3] = ["2025-12-06T14:22:20.349Z", "2025-12-06T14:22:20.350Z", "2024-01-01T00:00:00.000Z"];

fn value_of(kind: &str, pick: usize) -> Value {
    match kind {
        "string" => json!(TEXTS[pick % TEXTS.len()]),
        "integer" => json!(NUMBERS[pick % NUMBERS.len()] as i64),
        "decimal" => json!(NUMBERS[pick % NUMBERS.len()]),
        "boolean" => json!(pick.is_multiple_of(2)),
        "timestamp" => json!(TIMES[pick % TIMES.len()]),
        _ => match pick % 5 {
            0 => json!({"en": TEXTS[pick % TEXTS.len()], "ar": "عربي"}),
            1 => json!([TEXTS[pick % TEXTS.len()], 1]),
            2 => json!(NUMBERS[pick % NUMBERS.len()]),
            3 => json!(TEXTS[pick % TEXTS.len()]),
            _ => json!(true),
        },
    }
}

fn any_literal(pick: usize) -> Value {
    match pick % 9 {
        0 => Value::Null,
        1 => json!(!pick.is_multiple_of(2)),
        2 | 3 => json!(TEXTS[pick % TEXTS.len()]),
        4 | 5 => json!(NUMBERS[pick % NUMBERS.len()]),
        6 => json!(NUMBERS[pick % NUMBERS.len()] as i64),
        7 => json!(TIMES[pick % TIMES.len()]),
        _ => json!({"en": TEXTS[pick % TEXTS.len()], "ar": "عربي"}),
    }
}

#[derive(Debug, Clone)]
pub(super) struct Spec {
    /// Field kinds, and whether each has a column name of its own.
    pub(super) fields: Vec<(usize, bool)>,
    /// Per row, per field: 0 missing, 1 null, 2 under its name, 3 under its column, 4 a value of
    /// any kind under its name (stored as sent, `--validation lenient`); and a pick.
    pub(super) rows: Vec<Vec<(u8, usize)>>,
    /// A property outside the schema, per row.
    pub(super) extras: Vec<Option<usize>>,
}

pub(super) fn spec() -> impl Strategy<Value = Spec> {
    prop::collection::vec((0..KINDS.len(), any::<bool>()), 1..5).prop_flat_map(|fields| {
        let n = fields.len();
        (
            Just(fields),
            prop::collection::vec(prop::collection::vec((0..5u8, 0..50usize), n), 0..12),
            prop::collection::vec(prop::option::of(0..50usize), 12),
        )
            .prop_map(|(fields, rows, extras)| Spec { fields, rows, extras })
    })
}

pub(super) fn table_of(spec: &Spec) -> Table {
    let mut fields = vec![json!({"name": "id", "type": "string", "primaryKey": true})];
    for (i, (kind, own_column)) in spec.fields.iter().enumerate() {
        let mut f = json!({"name": format!("f{i}"), "type": KINDS[*kind]});
        if *own_column {
            f["columnName"] = json!(format!("f{i}_col"));
        }
        fields.push(f);
    }
    let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": fields}]}})).unwrap();
    schema.table("t").unwrap().clone()
}

pub(super) fn rows_of(spec: &Spec, table: &Table) -> Vec<Row> {
    spec.rows
        .iter()
        .enumerate()
        .map(|(r, cells)| {
            let mut row = Row::new();
            row.insert("id".into(), json!(format!("r{r}")));
            for (i, (how, pick)) in cells.iter().enumerate() {
                let field = &table.fields[i + 1];
                let value = value_of(KINDS[spec.fields[i].0], *pick);
                match how {
                    1 => drop(row.insert(field.name.clone(), Value::Null)),
                    2 => drop(row.insert(field.name.clone(), value)),
                    3 => drop(row.insert(field.column.clone(), value)),
                    4 => drop(row.insert(field.name.clone(), any_literal(*pick))),
                    _ => {}
                }
            }
            if let Some(pick) = spec.extras[r] {
                row.insert("extra".into(), any_literal(pick));
            }
            row
        })
        .collect()
}

fn operand(n_fields: usize) -> impl Strategy<Value = Operand> {
    prop_oneof![
        4 => (0..n_fields, any::<bool>()).prop_map(|(i, column)| Operand::Field(vec![if column { format!("f{i}_col") } else { format!("f{i}") }])),
        1 => (0..n_fields).prop_map(|i| Operand::Field(vec![format!("f{i}"), "en".into()])),
        1 => Just(Operand::Field(vec!["extra".into()])),
        1 => Just(Operand::Field(vec!["id".into()])),
        4 => (0..50usize).prop_map(|p| Operand::Value(any_literal(p))),
    ]
}

fn compare(n_fields: usize) -> impl Strategy<Value = Filter> {
    let op = prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::In,
        Op::Contains,
        Op::NotContains,
    ]);
    (operand(n_fields), op, operand(n_fields), prop::collection::vec(0..50usize, 0..4)).prop_map(
        |(left, op, right, list)| {
            let right = if op == Op::In {
                Operand::Value(Value::Array(list.into_iter().map(any_literal).collect()))
            } else {
                right
            };
            Filter::Compare { left, op, right }
        },
    )
}

fn filter(n_fields: usize) -> impl Strategy<Value = Filter> {
    compare(n_fields).prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

pub(super) fn case() -> impl Strategy<Value = (Spec, Vec<Filter>)> {
    spec().prop_flat_map(|s| {
        let n = s.fields.len();
        (Just(s), prop::collection::vec(filter(n), 8))
    })
}
