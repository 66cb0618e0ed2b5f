//! How rows are laid out, the same on every backend: the whole record as JSON (the source of truth
//! for its shape, unknown properties included) plus one typed column per schema field with a safe,
//! distinct name, for indexes, unique constraints, queries, sorts and aggregates.

use mishkah_core::schema::{FieldType, Table};

/// Column names our own internal columns and tables start with.
pub const PREFIX: &str = "mishkah_";

/// Whether `name` may be used as a column or table name as is.
pub fn is_safe_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
        && !name.to_ascii_lowercase().starts_with(PREFIX)
}

/// The typed columns of a table: `(column, field, type)`, one per field with a safe name (the first
/// of names that differ only by case).
pub fn typed_fields(table: &Table) -> Vec<(String, String, FieldType)> {
    let mut seen = std::collections::HashSet::new();
    table
        .fields
        .iter()
        .filter(|f| is_safe_identifier(&f.column) && seen.insert(f.column.to_ascii_lowercase()))
        .map(|f| (f.column.clone(), f.name.clone(), f.ty))
        .collect()
}

/// The typed columns of the fields a stored row may lack and be given a default for
/// ([`mishkah_core::record::backfill_value`]): each gets an index of only the rows where it is
/// null, so the backfill at each open finds the rows lacking it without reading the others.
pub fn lacking_default(table: &Table, column_of: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    table
        .fields
        .iter()
        .filter(|f| mishkah_core::record::backfill_value(f).is_some())
        .filter_map(|f| column_of(&f.name))
        .collect()
}

/// Whether a page may be sorted (and grouped) by `name`: a scalar field with a typed column, or
/// the row's `createdAt` / `updatedAt`. Sorting on a JSON value has no order worth promising.
pub fn sortable(table: &Table, name: &str) -> bool {
    let scalar_column = table
        .field(name)
        .filter(|f| f.ty != FieldType::Json)
        .is_some_and(|f| typed_fields(table).iter().any(|(_, field, _)| *field == f.name));
    scalar_column || matches!(name, "createdAt" | "updatedAt")
}

/// The stored table of a schema table: `t_<sqlName>`, or a hex form for a name that is not a safe
/// identifier.
pub fn table_name(table: &Table) -> String {
    if is_safe_identifier(&table.sql_name) {
        return format!("t_{}", table.sql_name);
    }
    let mut out = String::from("t_x");
    for b in table.name.bytes().take(30) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// What a stored table's shape depends on (its key, its fields' types), kept beside it so a later
/// schema that would reinterpret stored data is refused ([`crate::schema_change`]).
pub fn fingerprint(table: &Table) -> String {
    let key_fields = serde_json::to_string(&table.key_fields()).expect("strings serialize");
    let types: Vec<(String, String)> =
        table.fields.iter().map(|f| (f.name.clone(), f.ty.as_str().to_owned())).collect();
    serde_json::json!({"key": key_fields, "fields": types}).to_string()
}
