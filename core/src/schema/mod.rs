//! Schemas: one normalized model ([`Schema`], [`Table`], [`Field`]) for the three formats found in
//! real deployments.
//!
//! - **Designer** (`{name, schema: {tables: [{name, sqlName, fields: [..]}]}}`), see [`designer`].
//! - **SQL-column** (`{tables: [{name, columns: [{name, type: "NVARCHAR(60)"}]}]}`), see [`sql_columns`].
//! - **Compact** (`{tables: {name: {fields: {..}}}}` or `{name: {fields: [..]}}`), see [`compact`].
//!
//! [`Schema::from_json`] detects the format. Type names map through [`FieldType::from_type_name`];
//! unknown names fall back to [`FieldType::Text`] with a [`SchemaWarning`], never a panic.
//!
//! ```
//! use mishkah_core::schema::{Schema, FieldType};
//! let schema = Schema::from_json(&serde_json::json!({
//!     "tables": {"note": {"fields": {"id": {"type": "text", "primaryKey": true},
//!                                    "pinned": {"type": "boolean"}}}}
//! })).unwrap();
//! let note = schema.table("note").unwrap();
//! assert_eq!(note.primary_key, vec!["id".to_string()]);
//! assert_eq!(note.field("pinned").unwrap().ty, FieldType::Boolean);
//! ```

pub mod compact;
pub mod designer;
pub mod model;
pub mod sql_columns;
mod types;
mod typescript;

pub use model::{DefaultValue, Field, Index, Reference, Schema, SchemaWarning, Table};
pub use types::FieldType;
pub use typescript::typescript;

use serde_json::Value;

/// A schema document could not be understood at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    /// The document matches none of the three formats.
    #[error("unrecognized schema format: {0}")]
    UnknownFormat(String),
    /// A table or field lacks something no format can do without (a name).
    #[error("invalid schema: {0}")]
    Invalid(String),
}

impl SchemaError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        "invalid-schema"
    }
}

impl Schema {
    /// Parses any of the three schema formats into the normalized model.
    pub fn from_json(doc: &Value) -> Result<Schema, SchemaError> {
        let obj = doc.as_object().ok_or_else(|| SchemaError::UnknownFormat("schema must be a JSON object".into()))?;
        if let Some(inner) = obj.get("schema").filter(|s| s.get("tables").is_some()) {
            return designer::parse(inner);
        }
        match obj.get("tables") {
            Some(Value::Array(tables)) => {
                let has_columns = tables.iter().any(|t| t.get("columns").is_some());
                if has_columns {
                    sql_columns::parse(tables)
                } else {
                    designer::parse(doc)
                }
            }
            Some(Value::Object(tables)) => compact::parse(tables),
            Some(_) => Err(SchemaError::UnknownFormat("`tables` must be an array or an object".into())),
            // The second compact form: the document itself maps table names to definitions.
            None if !obj.is_empty() && obj.values().all(|t| t.get("fields").is_some()) => compact::parse(obj),
            None => Err(SchemaError::UnknownFormat("no `tables` found".into())),
        }
    }
}
