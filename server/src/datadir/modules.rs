//! `modules.json`: module → tables, schema and seed paths.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::DataDirError;

/// One module's entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleDef {
    /// Display name.
    #[serde(default)]
    pub label: Option<String>,
    /// Tables the module is meant to hold.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Schema, relative to the module directory.
    #[serde(default)]
    pub schema_path: Option<String>,
    /// Schema fallback, from the project root (`data/schemas/...`).
    #[serde(default)]
    pub schema_fallback_path: Option<String>,
    /// Seed, relative to the module directory.
    #[serde(default)]
    pub seed_path: Option<String>,
    /// Seed fallback, from the project root.
    #[serde(default)]
    pub seed_fallback_path: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// **(ext)** `fill` or `refuse`: this module's answer to inserts lacking required fields,
    /// over `--missing-fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_fields: Option<mishkah_core::record::MissingFields>,
    /// **(ext)** `lenient` or `strict`: this module's answer to values that break their field's
    /// type, length or enum, over `--validation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<mishkah_core::record::Values>,
    /// **(ext)** Indexes beyond the schema's, per table, for the filters and sorts the module's
    /// clients use: `{"order_header": [["statusId", "createdAt"], {"fields": ["posId"], "unique": false}]}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub indexes: BTreeMap<String, Vec<ExtraIndex>>,
}

/// An index `modules.json` declares: its fields in order, or `{fields, unique}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraIndex {
    /// Field names.
    Fields(Vec<String>),
    /// Field names, and whether unique.
    Spec {
        /// Field names.
        fields: Vec<String>,
        /// Unique index.
        #[serde(default)]
        unique: bool,
    },
}

impl ModuleDef {
    /// Adds the declared indexes to the module's schema; a table or field the schema lacks, or a
    /// field without a typed column (a JSON blob), is an error naming it.
    pub fn add_indexes(&self, schema: &mut mishkah_core::Schema) -> Result<(), String> {
        for (table_name, indexes) in &self.indexes {
            let table = schema.tables.get_mut(table_name).ok_or_else(|| format!("indexes: no table `{table_name}`"))?;
            for index in indexes {
                let (fields, unique) = match index {
                    ExtraIndex::Fields(f) => (f, false),
                    ExtraIndex::Spec { fields, unique } => (fields, *unique),
                };
                if fields.is_empty() {
                    return Err(format!("indexes of `{table_name}`: an index needs at least one field"));
                }
                let mut names = Vec::new();
                for f in fields {
                    let field = table.field(f).ok_or_else(|| format!("indexes of `{table_name}`: no field `{f}`"))?;
                    if matches!(field.ty, mishkah_core::FieldType::Json) {
                        return Err(format!("indexes of `{table_name}`: `{f}` is JSON, which has no column to index"));
                    }
                    names.push(field.name.clone());
                }
                let name = format!("m_{}", names.join("_"))
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !table.indexes.iter().any(|i| i.fields == names) {
                    table.indexes.push(mishkah_core::schema::Index { name, fields: names, unique });
                }
            }
        }
        Ok(())
    }
}

pub(super) fn parse(doc: &Value, path: &Path) -> Result<BTreeMap<String, ModuleDef>, DataDirError> {
    let modules = doc.get("modules").unwrap_or(doc);
    serde_json::from_value(modules.clone())
        .map_err(|e| DataDirError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}
