//! Seeds: on first start of a branch/module its seed is written through the write path, so seeded
//! rows have versions and sequence numbers like any other.

use mishkah_core::schema::model::to_snake_case;
use mishkah_core::schema::{Field, FieldType, Table};
use mishkah_core::{Action, Mutation, Schema};
use serde_json::{Map, Value};

/// What a seed holds, mapped onto the schema.
#[derive(Debug, Default)]
pub struct SeedPlan {
    /// Inserts, in seed order.
    pub mutations: Vec<Mutation>,
    /// Tables the schema lacks, created so their data stays reachable.
    pub adhoc_tables: Vec<Table>,
    /// What was mapped or kept aside, for the log.
    pub notes: Vec<String>,
}

/// A table for seed data the schema does not describe, keyed by `id`.
pub fn adhoc_table(name: &str) -> Table {
    let mut id = Field::new("id", FieldType::Text);
    id.primary_key = true;
    id.nullable = false;
    Table {
        name: name.to_owned(),
        sql_name: to_snake_case(name),
        fields: vec![id],
        primary_key: vec!["id".into()],
        indexes: vec![],
    }
}

/// Maps a seed document (`{tables: {<name>: [rows] | {object}}}`) onto `schema`.
pub fn plan(schema: &Schema, seed: &Value) -> SeedPlan {
    let mut plan = SeedPlan::default();
    let Some(tables) = seed.get("tables").and_then(Value::as_object) else {
        plan.notes.push("seed has no `tables` object: nothing seeded".into());
        return plan;
    };
    for (name, content) in tables {
        let rows: Vec<Value> = match content {
            Value::Array(rows) => rows.clone(),
            // A settings-like object: kept as one row keyed by its own name.
            Value::Object(obj) => {
                let mut row = Map::new();
                row.insert("id".into(), Value::String(name.clone()));
                row.extend(obj.clone());
                vec![Value::Object(row)]
            }
            other => {
                plan.notes.push(format!("seed `{name}` is a {} and was not stored", kind(other)));
                continue;
            }
        };
        let table_name = match schema.resolve_table(name) {
            Some(t) if t.name == *name => t.name.clone(),
            Some(t) => {
                plan.notes.push(format!("seed table `{name}` stored as schema table `{}`", t.name));
                t.name.clone()
            }
            None => {
                plan.notes.push(format!(
                    "seed table `{name}` is not in the schema: kept in an extra table ({} rows)",
                    rows.len()
                ));
                plan.adhoc_tables.push(adhoc_table(name));
                name.clone()
            }
        };
        for row in rows {
            plan.mutations.push(Mutation::new(&table_name, Action::Insert, row));
        }
    }
    plan
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
