//! `modules.json` as its author wrote it, and the table names of a schema document in its own
//! order: what the original's discovery routes (`/api/schema`, `/api/modules`) answer with.

use serde_json::{Map, Value};

/// The module entries of `modules.json`, in file order, each as written.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<(String, Map<String, Value>)>,
}

impl Catalog {
    pub(super) fn from_doc(doc: &Value) -> Catalog {
        let modules = doc.get("modules").unwrap_or(doc);
        let entries = modules
            .as_object()
            .map(|m| m.iter().map(|(id, entry)| (id.clone(), entry.as_object().cloned().unwrap_or_default())).collect())
            .unwrap_or_default();
        Catalog { entries }
    }

    /// Module ids in file order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(id, _)| id.as_str())
    }

    /// A module's entry as written.
    pub fn entry(&self, id: &str) -> Option<&Map<String, Value>> {
        self.entries.iter().find(|(m, _)| m == id).map(|(_, e)| e)
    }
}

/// The table names of a schema document in any of its formats, in document order: tables are an
/// array of objects named by `name` (else `tableName`, `sqlName`, `id`, `key`), or an object keyed
/// by name, under `schema.tables` or `tables`.
pub fn table_names(doc: &Value) -> Vec<String> {
    let tables = doc.get("schema").and_then(|s| s.get("tables")).or_else(|| doc.get("tables"));
    let names: Vec<String> = match tables {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|t| {
                ["name", "tableName", "sqlName", "id", "key"].iter().find_map(|k| t.get(*k).and_then(Value::as_str))
            })
            .map(|n| n.trim().to_owned())
            .collect(),
        Some(Value::Object(map)) => map.keys().map(|k| k.trim().to_owned()).collect(),
        _ => Vec::new(),
    };
    merge_table_lists(Vec::new(), names)
}

/// `listed`, then each of `more` not yet in it; blanks and repeats dropped.
pub(super) fn merge_table_lists(listed: Vec<String>, more: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(listed.len() + more.len());
    for name in listed.into_iter().chain(more) {
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_in_document_order_in_every_format() {
        let designer = json!({"schema": {"tables": [{"name": "b"}, {"tableName": "a"}, {"name": " b "}]}});
        assert_eq!(table_names(&designer), ["b", "a"]);
        let compact = json!({"tables": {"z": {}, "y": {}}});
        assert_eq!(table_names(&compact), ["z", "y"]);
        assert!(table_names(&json!({"nothing": 1})).is_empty());
    }

    #[test]
    fn listed_tables_come_first() {
        let merged = merge_table_lists(vec!["x".into(), "a".into()], vec!["a".into(), "b".into(), "".into()]);
        assert_eq!(merged, ["x", "a", "b"]);
    }

    #[test]
    fn entries_keep_file_order() {
        let c = Catalog::from_doc(&json!({"modules": {"z": {"label": "Z"}, "a": {}}}));
        assert_eq!(c.ids().collect::<Vec<_>>(), ["z", "a"]);
        assert_eq!(c.entry("z").unwrap()["label"], "Z");
    }
}
