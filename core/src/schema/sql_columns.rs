//! The SQL-column format: `{version, tables: [{name, columns: [{name, type: "NVARCHAR(60)",
//! primaryKey, nullable, unique, default, foreignKey: "Roles(ID)"}], indexes}]}`
//! (e.g. `branches/clinic-main/modules/erp/schema/definition.json`).

use serde_json::Value;

use super::designer::parse_indexes;
use super::types::{length_parameter, parse_default, resolve_type};
use super::{Field, Reference, Schema, SchemaError, Table};

/// Parses the `tables` array of a SQL-column document.
pub fn parse(tables: &[Value]) -> Result<Schema, SchemaError> {
    let mut schema = Schema::default();
    for (i, t) in tables.iter().enumerate() {
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError::Invalid(format!("table #{i} has no name")))?;
        let mut table = Table {
            name: name.to_owned(),
            sql_name: name.to_owned(),
            fields: Vec::new(),
            primary_key: Vec::new(),
            indexes: parse_indexes(name, t.get("indexes")),
            hidden: Vec::new(),
            locked: false,
        };
        for (j, c) in t.get("columns").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let cname = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| SchemaError::Invalid(format!("{name}: column #{j} has no name")))?;
            let type_name = c.get("type").and_then(Value::as_str);
            let ty = resolve_type(name, cname, type_name, &mut schema.warnings);
            let mut field = Field::new(cname, ty);
            field.source_type = type_name.unwrap_or("text").to_owned();
            field.max_length = type_name.and_then(length_parameter);
            field.nullable = c.get("nullable").and_then(Value::as_bool).unwrap_or(true);
            field.primary_key = c.get("primaryKey").and_then(Value::as_bool).unwrap_or(false);
            field.unique = c.get("unique").and_then(Value::as_bool).unwrap_or(false);
            field.default = parse_default(c.get("default").or_else(|| c.get("defaultValue")), ty);
            field.references = c.get("foreignKey").and_then(Value::as_str).and_then(parse_foreign_key);
            table.fields.push(field);
        }
        schema.insert_table(table);
    }
    Ok(schema)
}

/// `"Roles(ID)"` → `Roles.ID`.
fn parse_foreign_key(text: &str) -> Option<Reference> {
    let (table, rest) = text.split_once('(')?;
    let field = rest.strip_suffix(')')?;
    Some(Reference { table: table.trim().to_owned(), field: field.trim().to_owned() })
}

#[cfg(test)]
mod tests {
    use crate::schema::{DefaultValue, FieldType, Schema};
    use serde_json::json;

    #[test]
    fn reads_lengths_defaults_and_foreign_keys() {
        let s = Schema::from_json(&json!({"version": "1.0", "tables": [{"name": "Users", "columns": [
            {"name": "ID", "type": "NVARCHAR(60)", "primaryKey": true},
            {"name": "Active", "type": "BIT", "default": "1"},
            {"name": "Joined", "type": "DATETIME", "default": "getdate()"},
            {"name": "Role_ID", "type": "NVARCHAR(60)", "foreignKey": "Roles(ID)"}],
            "indexes": [{"name": "idx_role", "columns": ["Role_ID"]}]}]}))
        .unwrap();
        let t = s.table("Users").unwrap();
        assert_eq!(t.primary_key, vec!["ID"]);
        assert_eq!(t.field("ID").unwrap().max_length, Some(60));
        assert_eq!(t.field("Active").unwrap().default, Some(DefaultValue::Value(json!(true))));
        assert_eq!(t.field("Joined").unwrap().default, Some(DefaultValue::Now));
        assert_eq!(t.field("Joined").unwrap().ty, FieldType::Timestamp);
        assert_eq!(t.field("Role_ID").unwrap().references.as_ref().unwrap().field, "ID");
    }
}
