//! Record keys: the primary-key value(s) of a row in one canonical string.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Row;
use crate::schema::Table;

/// The canonical key of a row. A single-field key is the value as text (`"T01"`, `"42"`); a
/// composite key is the JSON array of its values (`["o1",3]`), so distinct keys never collide.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordKey(pub String);

/// A row lacks (part of) its primary key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record of `{table}` has no value for key field `{field}`")]
pub struct KeyError {
    pub table: String,
    /// The first missing key field.
    pub field: String,
}

impl RecordKey {
    /// Extracts the key of `row`, looking each key field up by name or column name.
    pub fn of(table: &Table, row: &Row) -> Result<RecordKey, KeyError> {
        let fields = table.key_fields();
        let mut values = Vec::with_capacity(fields.len());
        for name in &fields {
            let value = lookup(table, row, name).filter(|v| !v.is_null() && v.as_str() != Some(""));
            let value = value.ok_or_else(|| KeyError { table: table.name.clone(), field: (*name).to_owned() })?;
            values.push(value.clone());
        }
        Ok(match values.as_slice() {
            [single] => RecordKey(scalar_text(single)),
            _ => RecordKey(Value::Array(values).to_string()),
        })
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for RecordKey {
    fn from(s: &str) -> Self {
        RecordKey(s.to_owned())
    }
}

/// Reads field `name` of `row` under its logical name or its column name.
pub(crate) fn lookup<'r>(table: &Table, row: &'r Row, name: &str) -> Option<&'r Value> {
    if let Some(v) = row.get(name) {
        return Some(v);
    }
    let field = table.field(name)?;
    row.get(&field.name).or_else(|| row.get(&field.column))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
