//! Seeds: on first start of a branch/module its seed is written through the write path, so seeded
//! rows have versions and sequence numbers like any other.
//!
//! Real seeds are messy, and the original kept every row, so nothing that can be kept is lost:
//! - a row that repeats a key already seen in its table is dropped, **first wins** (the original
//!   looked rows up with `find`, so the first was the one its clients saw), and counted;
//! - a unique index (or unique field) the seed's own rows violate is created as a plain index
//!   ([`relax_unique`]), with a warning, instead of refusing the rows that collide;
//! - a row without a key gets a generated one (by the writer, as any keyless insert).

use mishkah_core::schema::model::to_snake_case;
use mishkah_core::schema::{Field, FieldType, Table};
use std::collections::HashSet;

use mishkah_core::{Action, Mutation, RecordKey, Schema};
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
    /// Rows dropped because an earlier row of their table had the same key.
    pub merged: usize,
    /// Unique indexes created as plain ones because the seed violates them ([`relax_unique`]).
    pub relaxed: Vec<String>,
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
        hidden: Vec::new(),
        locked: false,
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
        let mut seen = HashSet::new();
        let mut repeated = Vec::new();
        let table = schema.table(&table_name);
        for row in rows {
            let key = table.zip(row.as_object()).and_then(|(t, r)| RecordKey::of(t, r).ok());
            if let Some(key) = key {
                if !seen.insert(key.clone()) {
                    repeated.push(key.0);
                    continue;
                }
            }
            plan.mutations.push(Mutation::new(&table_name, Action::Insert, row));
        }
        if !repeated.is_empty() {
            plan.merged += repeated.len();
            plan.notes.push(format!(
                "seed table `{name}`: {} rows repeat a key seen earlier, the first row of each key kept ({})",
                repeated.len(),
                summarize(&repeated)
            ));
        }
    }
    plan
}

fn summarize(keys: &[String]) -> String {
    let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
    match keys.len() {
        n if n > shown.len() => format!("{} and {} more", shown.join(", "), n - shown.len()),
        _ => shown.join(", "),
    }
}

/// Turns every unique field or index of `schema` that the rows of `plan` violate into a plain
/// index, so the seed loads whole. Returns a description of each, for the startup warning.
pub fn relax_unique(schema: &mut Schema, plan: &SeedPlan) -> Vec<String> {
    let mut relaxed = Vec::new();
    for table in schema.tables.values_mut() {
        let rows: Vec<&Map<String, Value>> =
            plan.mutations.iter().filter(|m| m.table == table.name).map(|m| &m.record).collect();
        if rows.is_empty() {
            continue;
        }
        let single_key = table.key_fields().len() == 1;
        let mut violated_fields = Vec::new();
        for field in table.fields.iter().filter(|f| f.unique && !(f.primary_key && single_key)) {
            if has_duplicates(table, &rows, std::slice::from_ref(&field.name)) {
                violated_fields.push(field.name.clone());
            }
        }
        for name in violated_fields {
            if let Some(field) = table.fields.iter_mut().find(|f| f.name == name) {
                field.unique = false;
                field.indexed = true;
            }
            relaxed.push(format!("{}.{name}", table.name));
        }
        let violated_indexes: Vec<usize> = (0..table.indexes.len())
            .filter(|&i| table.indexes[i].unique && has_duplicates(table, &rows, &table.indexes[i].fields))
            .collect();
        for i in violated_indexes {
            table.indexes[i].unique = false;
            relaxed.push(format!(
                "{} index `{}` ({})",
                table.name,
                table.indexes[i].name,
                table.indexes[i].fields.join(", ")
            ));
        }
    }
    relaxed
}

/// Whether two rows share a value for `fields` (rows lacking one of them never collide, as
/// NULLs do not in SQL).
fn has_duplicates(table: &Table, rows: &[&Map<String, Value>], fields: &[String]) -> bool {
    let mut seen = HashSet::new();
    for row in rows {
        let values: Option<Vec<String>> = fields
            .iter()
            .map(|name| {
                let field = table.field(name)?;
                let value = row.get(&field.name).or_else(|| row.get(&field.column))?;
                match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                }
            })
            .collect();
        if let Some(values) = values {
            if !seen.insert(values) {
                return true;
            }
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({"tables": {"employees": {
            "fields": {"id": {"type": "text", "primaryKey": true}, "pinCode": {"type": "text", "unique": true},
                       "email": {"type": "text", "unique": true}},
            "indexes": [{"name": "by_pin_email", "fields": ["pinCode", "email"], "unique": true}]}}}))
        .unwrap()
    }

    #[test]
    fn a_repeated_key_keeps_the_first_row_and_is_counted() {
        let seed = json!({"tables": {"employees": [
            {"id": "e1", "pinCode": "1"}, {"id": "e2", "pinCode": "2"}, {"id": "e1", "pinCode": "9"}, {"pinCode": "3"}]}});
        let plan = plan(&schema(), &seed);
        assert_eq!(plan.merged, 1);
        let pins: Vec<_> = plan.mutations.iter().map(|m| m.record["pinCode"].clone()).collect();
        assert_eq!(pins, vec![json!("1"), json!("2"), json!("3")], "first wins; a keyless row is kept");
        assert!(plan.notes.iter().any(|n| n.contains("first row of each key kept (e1)")));
    }

    #[test]
    fn only_the_unique_indexes_the_seed_violates_are_relaxed() {
        let mut schema = schema();
        let seed = json!({"tables": {"employees": [
            {"id": "e1", "pinCode": "1", "email": "a@x"}, {"id": "e2", "pinCode": "1", "email": "b@x"},
            {"id": "e3", "pinCode": null, "email": null}, {"id": "e4", "email": null}]}});
        let seed_plan = plan(&schema, &seed);
        let relaxed = relax_unique(&mut schema, &seed_plan);
        assert_eq!(relaxed, vec!["employees.pinCode".to_string()]);
        let t = schema.table("employees").unwrap();
        let pin = t.field("pinCode").unwrap();
        assert!(!pin.unique && pin.indexed);
        assert!(t.field("email").unwrap().unique, "nulls never collide");
        assert!(t.indexes[0].unique, "the pair is still distinct");
    }
}
