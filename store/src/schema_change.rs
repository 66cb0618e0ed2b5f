//! What a new schema does to a table's stored rows, the same on every backend: fields added (and
//! the default old rows get), fields dropped, fields whose type changed and the rows whose value
//! the new type refuses. A backend supplies the table's stored [`fingerprint`](crate::layout::fingerprint)
//! and its documents; `serve` refuses a type change with it, `mishkah check` prints it.

use mishkah_core::record::{backfill, backfill_value, fits_type, Row};
use mishkah_core::schema::{Field, Table};
use serde_json::Value;

use crate::StorageError;

/// Keys of failing rows named in a report; the count says how many there are in all.
const EXAMPLES: usize = 5;

/// The fields a table was stored with: `(name, type)`.
fn stored_fields(table: &str, fingerprint: &str) -> Result<(Value, Vec<(String, String)>), StorageError> {
    let corrupt = |e: serde_json::Error| StorageError::Corrupt(format!("stored schema fingerprint of `{table}`: {e}"));
    let old: Value = serde_json::from_str(fingerprint).map_err(corrupt)?;
    let fields = serde_json::from_value(old["fields"].clone()).map_err(corrupt)?;
    Ok((old["key"].clone(), fields))
}

/// A field of the new schema that the stored table lacked.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub field: String,
    /// What rows lacking it get ([`backfill_value`]); none: they stay without it.
    pub default: Option<Value>,
    /// Stored rows that lack it.
    pub lacking: u64,
}

/// A field whose type changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Retyped {
    pub field: String,
    pub from: String,
    pub to: String,
    /// Stored rows whose value the new type refuses.
    pub failing: u64,
    /// The first few of their keys.
    pub examples: Vec<String>,
}

impl Retyped {
    /// What the new type makes of the `stored` rows: all fit, or how many it refuses and which.
    pub fn rows(&self, stored: u64) -> String {
        match self.failing {
            0 => format!("every one of the {stored} stored rows fits the new type"),
            n => format!(
                "{n} of the {stored} stored rows hold values it refuses (keys {}{})",
                self.examples.join(", "),
                if n as usize > self.examples.len() { ", …" } else { "" }
            ),
        }
    }
}

/// What a new schema does to one stored table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableImpact {
    pub table: String,
    /// Rows stored.
    pub rows: u64,
    pub added: Vec<Added>,
    /// Fields stored rows may still carry but the schema no longer describes (kept in the rows,
    /// no longer filtered or sorted on).
    pub dropped: Vec<String>,
    pub retyped: Vec<Retyped>,
}

impl TableImpact {
    /// Whether the schema changes nothing for this table.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty() && self.retyped.is_empty()
    }

    /// The refusal a type change gets: stored values would be read as another type (a backend
    /// keeps a typed column per field), so the module stays closed until the schema says again
    /// what its rows hold.
    pub fn refusal(&self) -> Option<StorageError> {
        let changes: Vec<String> = self
            .retyped
            .iter()
            .map(|r| format!("field `{}` changed type from {} to {}: {}", r.field, r.from, r.to, r.rows(self.rows)))
            .collect();
        (!changes.is_empty()).then(|| StorageError::Destructive {
            table: self.table.clone(),
            message: format!(
                "{}. This module stays closed (the others serve): give the field its stored type back, or add a \
                 field under a new name; `mishkah check --data DIR` shows what the schema does to the stored rows",
                changes.join("; ")
            ),
        })
    }
}

/// A changed key would reinterpret every stored row: refused before anything else is looked at.
pub fn check_key(table: &Table, fingerprint: &str) -> Result<(), StorageError> {
    let (old_key, _) = stored_fields(&table.name, fingerprint)?;
    let new_key = Value::String(serde_json::to_string(&table.key_fields()).expect("strings serialize"));
    if old_key != new_key {
        return Err(StorageError::Destructive {
            table: table.name.clone(),
            message: format!("primary key changed from {old_key} to {new_key}"),
        });
    }
    Ok(())
}

/// Whether any field's type differs from the stored one (cheap: no row read).
pub fn retypes(table: &Table, fingerprint: &str) -> Result<bool, StorageError> {
    let (_, stored) = stored_fields(&table.name, fingerprint)?;
    Ok(table.fields.iter().any(|f| stored.iter().any(|(name, ty)| *name == f.name && ty != f.ty.as_str())))
}

/// Called with each stored `(key, document)`.
pub type EachDoc<'a> = dyn FnMut(&str, &str) -> Result<(), StorageError> + 'a;

/// What `table` does to the rows stored under `fingerprint`, reading each `(key, document)` once.
pub fn impact(
    table: &Table,
    fingerprint: &str,
    docs: &mut dyn FnMut(&mut EachDoc<'_>) -> Result<(), StorageError>,
) -> Result<TableImpact, StorageError> {
    let (_, stored) = stored_fields(&table.name, fingerprint)?;
    let was = |name: &str| stored.iter().find(|(n, _)| n == name).map(|(_, ty)| ty.clone());
    let mut out = TableImpact { table: table.name.clone(), ..TableImpact::default() };
    let added: Vec<_> = table.fields.iter().filter(|f| was(&f.name).is_none()).collect();
    out.added = added
        .iter()
        .map(|f| Added { field: f.name.clone(), default: backfill_value(f).cloned(), lacking: 0 })
        .collect();
    out.dropped = stored.iter().filter(|(n, _)| table.field(n).is_none()).map(|(n, _)| n.clone()).collect();
    let retyped: Vec<_> =
        table.fields.iter().filter_map(|f| was(&f.name).filter(|ty| ty != f.ty.as_str()).map(|ty| (f, ty))).collect();
    out.retyped = retyped
        .iter()
        .map(|(f, from)| Retyped {
            field: f.name.clone(),
            from: from.clone(),
            to: f.ty.as_str().to_owned(),
            failing: 0,
            examples: Vec::new(),
        })
        .collect();
    docs(&mut |key, doc| {
        out.rows += 1;
        let row: Row = serde_json::from_str(doc).map_err(|e| StorageError::Corrupt(format!("row `{key}`: {e}")))?;
        let value = |f: &Field| row.get(&f.name).or_else(|| row.get(&f.column));
        let backfilled = backfill(table, &row);
        for (field, out) in added.iter().zip(&mut out.added) {
            if backfilled.contains_key(&field.name) || (out.default.is_none() && value(field).is_none()) {
                out.lacking += 1;
            }
        }
        for (i, (field, _)) in retyped.iter().enumerate() {
            if value(field).is_some_and(|v| fits_type(field, v).is_err()) {
                let r = &mut out.retyped[i];
                r.failing += 1;
                if r.examples.len() < EXAMPLES {
                    r.examples.push(key.to_owned());
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::fingerprint;
    use mishkah_core::Schema;
    use serde_json::json;

    fn table(fields: Value) -> Table {
        let schema = Schema::from_json(&json!({"tables": {"dish": {"fields": fields}}})).unwrap();
        schema.table("dish").unwrap().clone()
    }

    fn run(old: &Table, new: &Table, rows: &[(&str, Value)]) -> TableImpact {
        let rows: Vec<(String, String)> = rows.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        impact(new, &fingerprint(old), &mut |f| rows.iter().try_for_each(|(k, d)| f(k, d))).unwrap()
    }

    #[test]
    fn reports_added_dropped_and_retyped_fields_against_the_rows() {
        let old = table(json!({"id": {"type": "text", "primaryKey": true}, "price": {"type": "text"},
                               "note": {"type": "text"}}));
        let new = table(json!({"id": {"type": "text", "primaryKey": true}, "price": {"type": "integer"},
                               "spicy": {"type": "boolean", "nullable": false, "defaultValue": false},
                               "tag": {"type": "text"}}));
        let rows = [
            ("a", json!({"id": "a", "price": "12", "note": "x"})),
            ("b", json!({"id": "b", "price": "twelve"})),
            ("c", json!({"id": "c", "price": null, "spicy": true, "tag": "hot"})),
        ];
        let impact = run(&old, &new, &rows);
        assert_eq!(impact.rows, 3);
        assert_eq!(
            impact.added,
            vec![
                Added { field: "spicy".into(), default: Some(json!(false)), lacking: 2 },
                Added { field: "tag".into(), default: None, lacking: 2 },
            ]
        );
        assert_eq!(impact.dropped, vec!["note".to_string()]);
        assert_eq!(
            impact.retyped,
            vec![Retyped {
                field: "price".into(),
                from: "text".into(),
                to: "integer".into(),
                failing: 1,
                examples: vec!["b".into()]
            }]
        );
        let refusal = impact.refusal().unwrap().to_string();
        assert!(refusal.contains("`price` changed type from text to integer: 1 of the 3 stored rows"), "{refusal}");
        assert!(refusal.contains("keys b") && refusal.contains("mishkah check"), "{refusal}");
        assert!(retypes(&new, &fingerprint(&old)).unwrap());
    }

    #[test]
    fn the_same_schema_changes_nothing_and_a_key_change_is_refused() {
        let t = table(json!({"id": {"type": "text", "primaryKey": true}, "n": {"type": "integer"}}));
        let impact = run(&t, &t, &[("a", json!({"id": "a", "n": 1}))]);
        assert!(impact.is_empty() && impact.refusal().is_none());
        assert!(!retypes(&t, &fingerprint(&t)).unwrap());
        let rekeyed = table(json!({"id": {"type": "text"}, "n": {"type": "integer", "primaryKey": true}}));
        assert_eq!(check_key(&rekeyed, &fingerprint(&t)).unwrap_err().code(), "destructive-migration");
        assert!(check_key(&t, &fingerprint(&t)).is_ok());
    }
}
