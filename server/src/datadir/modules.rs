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
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// **(ext)** `fill` or `refuse`: this module's answer to inserts lacking required fields,
    /// over `--missing-fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_fields: Option<mishkah_core::record::MissingFields>,
}

pub(super) fn parse(doc: &Value, path: &Path) -> Result<BTreeMap<String, ModuleDef>, DataDirError> {
    let modules = doc.get("modules").unwrap_or(doc);
    serde_json::from_value(modules.clone())
        .map_err(|e| DataDirError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}
