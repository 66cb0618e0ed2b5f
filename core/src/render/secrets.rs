//! `data/security/secret_fields.json` of the original: `{secretFields: {<table>: [<field>...]},
//! lockedTables: [<table>...]}`, table names compared case-insensitively. Applied to a schema, it
//! becomes the tables' `hidden` and `locked` properties that [`super::client_row`] honours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::schema::Schema;

/// The secret fields and locked tables of a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretFields {
    /// Table → fields never sent.
    #[serde(default)]
    pub secret_fields: BTreeMap<String, Vec<String>>,
    /// Tables whose rows are never sent.
    #[serde(default)]
    pub locked_tables: Vec<String>,
}

impl SecretFields {
    /// Parses the file's JSON; anything but that shape is an error naming what is wrong.
    pub fn from_json(doc: &serde_json::Value) -> Result<SecretFields, serde_json::Error> {
        SecretFields::deserialize(doc)
    }

    /// Marks `schema`'s tables: listed fields become hidden (under the listed name and the
    /// schema's name and column for that field), listed tables locked. Returns the names this
    /// schema does not have, for the log: a typo here would otherwise be a silent leak.
    pub fn apply_to(&self, schema: &mut Schema) -> Vec<String> {
        let mut unknown = Vec::new();
        for (table_name, fields) in &self.secret_fields {
            let Some(table) = schema.tables.values_mut().find(|t| t.name.eq_ignore_ascii_case(table_name)) else {
                unknown.push(table_name.clone());
                continue;
            };
            for name in fields {
                table.hide(name);
            }
        }
        for name in &self.locked_tables {
            match schema.tables.values_mut().find(|t| t.name.eq_ignore_ascii_case(name)) {
                Some(table) => table.locked = true,
                None => unknown.push(name.clone()),
            }
        }
        unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_tables_case_insensitively_with_every_spelling_and_reports_unknown_names() {
        let mut schema = Schema::from_json(&json!({"schema": {"tables": [
            {"name": "employees", "fields": [{"name": "id", "primaryKey": true},
                                             {"name": "pinCode", "columnName": "pin_code"}]},
            {"name": "user_sessions", "fields": [{"name": "id", "primaryKey": true}]}]}}))
        .unwrap();
        let secrets = SecretFields::from_json(&json!({
            "secretFields": {"Employees": ["pinCode", "email"], "ghost": ["x"]},
            "lockedTables": ["USER_SESSIONS"]}))
        .unwrap();
        assert_eq!(secrets.apply_to(&mut schema), vec!["ghost".to_string()]);
        let employees = schema.table("employees").unwrap();
        assert!(employees.hides("pin_code") && employees.hides("pinCode") && employees.hides("email"));
        assert!(!employees.hides("id"));
        assert!(schema.table("user_sessions").unwrap().locked);
        assert!(SecretFields::from_json(&json!({"secretFields": ["x"]})).is_err());
    }
}
