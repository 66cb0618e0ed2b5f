//! The designer format: `{name, schema: {tables: [{name, sqlName, fields: [{name, columnName, type,
//! nullable, maxLength, primaryKey, unique, index, defaultValue, references: {table, column}}]}]}}`
//! (e.g. `schemas/pos_schema.json`).

use serde_json::Value;

use super::types::{parse_default, resolve_type};
use super::{Field, Index, Reference, Schema, SchemaError, Table};

/// Parses `{tables: [...]}` (the inner `schema` object of a designer document).
pub fn parse(doc: &Value) -> Result<Schema, SchemaError> {
    let tables = doc
        .get("tables")
        .and_then(Value::as_array)
        .ok_or_else(|| SchemaError::UnknownFormat("designer schema needs `tables: [...]`".into()))?;
    let mut schema = Schema::default();
    for (i, t) in tables.iter().enumerate() {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Invalid(format!("table #{i} has no name")))?;
        let mut table = Table {
            name: name.to_owned(),
            sql_name: t.get("sqlName").and_then(Value::as_str).unwrap_or(name).to_owned(),
            fields: Vec::new(),
            primary_key: Vec::new(),
            indexes: Vec::new(),
            hidden: Vec::new(),
            locked: false,
        };
        for (j, f) in t.get("fields").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let fname = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| SchemaError::Invalid(format!("{name}: field #{j} has no name")))?;
            let type_name = f.get("type").and_then(Value::as_str);
            let ty = resolve_type(name, fname, type_name, &mut schema.warnings);
            let mut field = Field::new(fname, ty);
            field.source_type = type_name.unwrap_or("text").to_owned();
            field.column = f.get("columnName").and_then(Value::as_str).unwrap_or(fname).to_owned();
            field.nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(true);
            field.primary_key = f.get("primaryKey").and_then(Value::as_bool).unwrap_or(false);
            field.unique = f.get("unique").and_then(Value::as_bool).unwrap_or(false);
            field.indexed = f.get("index").and_then(Value::as_bool).unwrap_or(false);
            field.max_length = f.get("maxLength").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
            field.default = parse_default(f.get("defaultValue"), ty);
            field.enum_values = f.get("enum").and_then(Value::as_array).cloned();
            field.references = f.get("references").and_then(|r| {
                Some(Reference {
                    table: r.get("table")?.as_str()?.to_owned(),
                    field: r.get("column").or_else(|| r.get("field"))?.as_str()?.to_owned(),
                })
            });
            table.fields.push(field);
        }
        table.indexes = parse_indexes(name, t.get("indexes"));
        schema.insert_table(table);
    }
    Ok(schema)
}

/// `[{name?, columns|fields: [..], unique?}]`, shared with the SQL-column and compact formats.
pub(crate) fn parse_indexes(table: &str, indexes: Option<&Value>) -> Vec<Index> {
    let mut out = Vec::new();
    for (i, index) in indexes.and_then(Value::as_array).into_iter().flatten().enumerate() {
        let fields: Vec<String> = index
            .get("columns")
            .or_else(|| index.get("fields"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        if fields.is_empty() {
            continue;
        }
        let name =
            index.get("name").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| format!("idx_{table}_{i}"));
        out.push(Index { name, fields, unique: index.get("unique").and_then(Value::as_bool).unwrap_or(false) });
    }
    out
}
