//! The compact format, in its two spellings:
//! - `{version, moduleId, tables: {<name>: {fields: {<field>: {type, primaryKey, enum, ...}},
//!   indexes: [{fields, unique}]}}}`
//! - `{<name>: {fields: [{name, type: "TEXT", primaryKey, required, defaultValue, defaultFn}],
//!   foreignKeys: [{field, references, referencesField}]}}`

use serde_json::{Map, Value};

use super::designer::parse_indexes;
use super::types::{parse_default, resolve_type};
use super::{Field, Reference, Schema, SchemaError, Table};

/// Parses a map of table name → definition.
pub fn parse(tables: &Map<String, Value>) -> Result<Schema, SchemaError> {
    let mut schema = Schema::default();
    for (name, t) in tables {
        let mut table = Table {
            name: name.clone(),
            sql_name: t.get("sqlName").and_then(Value::as_str).unwrap_or(name).to_owned(),
            fields: Vec::new(),
            primary_key: Vec::new(),
            indexes: parse_indexes(name, t.get("indexes")),
            hidden: Vec::new(),
            locked: false,
        };
        let fields: Vec<(String, &Value)> = match t.get("fields") {
            Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    f.get("name")
                        .and_then(Value::as_str)
                        .map(|n| (n.to_owned(), f))
                        .ok_or_else(|| SchemaError::Invalid(format!("{name}: field #{j} has no name")))
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(SchemaError::Invalid(format!("{name}: `fields` must be an object or an array"))),
        };
        for (fname, f) in fields {
            let type_name = f.get("type").and_then(Value::as_str);
            let ty = resolve_type(name, &fname, type_name, &mut schema.warnings);
            let mut field = Field::new(&fname, ty);
            field.source_type = type_name.unwrap_or("text").to_owned();
            field.column = f.get("columnName").and_then(Value::as_str).unwrap_or(&fname).to_owned();
            let required = f.get("required").and_then(Value::as_bool).unwrap_or(false);
            field.nullable = f.get("nullable").and_then(Value::as_bool).unwrap_or(!required);
            field.primary_key = f.get("primaryKey").and_then(Value::as_bool).unwrap_or(false);
            field.unique = f.get("unique").and_then(Value::as_bool).unwrap_or(false);
            field.indexed = f.get("index").and_then(Value::as_bool).unwrap_or(false);
            field.max_length = f.get("maxLength").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
            field.enum_values = f.get("enum").and_then(Value::as_array).cloned();
            field.default =
                parse_default(f.get("defaultFn").or_else(|| f.get("defaultValue")).or_else(|| f.get("default")), ty);
            table.fields.push(field);
        }
        for fk in t.get("foreignKeys").and_then(Value::as_array).into_iter().flatten() {
            let (Some(from), Some(to)) =
                (fk.get("field").and_then(Value::as_str), fk.get("references").and_then(Value::as_str))
            else {
                continue;
            };
            let target = fk.get("referencesField").and_then(Value::as_str).unwrap_or("id");
            if let Some(field) = table.fields.iter_mut().find(|f| f.name == from) {
                field.references = Some(Reference { table: to.to_owned(), field: target.to_owned() });
            }
        }
        schema.insert_table(table);
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use crate::schema::{DefaultValue, FieldType, Schema};
    use serde_json::json;

    #[test]
    fn parses_the_field_map_spelling_with_enum_and_indexes() {
        let s = Schema::from_json(&json!({"version": 1, "moduleId": "m", "tables": {"task": {
            "fields": {"id": {"type": "text", "primaryKey": true}, "state": {"type": "text", "enum": ["a", "b"]},
                       "due": {"type": "date"}, "blob": {"type": "mystery"}},
            "indexes": [{"fields": ["state"], "unique": false}]}}}))
        .unwrap();
        let t = s.table("task").unwrap();
        assert_eq!(t.field("state").unwrap().enum_values.as_ref().unwrap().len(), 2);
        assert_eq!(t.indexes[0].fields, vec!["state"]);
        assert_eq!(t.field("blob").unwrap().ty, FieldType::Text);
        assert_eq!(s.warnings.len(), 1, "unknown type is reported");
    }

    #[test]
    fn parses_the_field_list_spelling_with_required_default_fn_and_foreign_keys() {
        let s = Schema::from_json(&json!({"line": {
            "fields": [{"name": "id", "type": "TEXT", "primaryKey": true},
                       {"name": "orderId", "type": "TEXT", "required": true},
                       {"name": "at", "type": "TEXT", "defaultFn": "NOW_ISO"}],
            "foreignKeys": [{"field": "orderId", "references": "order", "referencesField": "id"}]}}))
        .unwrap();
        let t = s.table("line").unwrap();
        assert!(!t.field("orderId").unwrap().nullable);
        assert_eq!(t.field("orderId").unwrap().references.as_ref().unwrap().table, "order");
        assert_eq!(t.field("at").unwrap().default, Some(DefaultValue::Now));
    }
}
