//! The normalized schema model shared by every format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FieldType;

/// Names of the fields every row carries, managed by the engine.
pub const VERSION_FIELD: &str = "version";
/// Creation time, set once on insert.
pub const CREATED_AT_FIELD: &str = "createdAt";
/// Last change time, set on every change.
pub const UPDATED_AT_FIELD: &str = "updatedAt";

/// A parsed schema: tables by name, plus what was odd about the source document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Schema {
    /// Tables by their logical name.
    pub tables: BTreeMap<String, Table>,
    /// Things that were tolerated while parsing (unknown types, duplicate tables...).
    pub warnings: Vec<SchemaWarning>,
}

/// Something tolerated while parsing a schema, reported rather than fatal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaWarning {
    /// The table concerned.
    pub table: String,
    /// The field concerned, if any.
    pub field: Option<String>,
    /// What happened.
    pub message: String,
}

/// One table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Logical name (what clients send as `table`).
    pub name: String,
    /// Name for SQL storage (`sqlName` in the designer format, else the name).
    pub sql_name: String,
    /// Fields in declaration order.
    pub fields: Vec<Field>,
    /// Field names of the primary key, in order (single or composite). May be empty when the source
    /// declares none; parsing then falls back to an `id` field when there is one.
    pub primary_key: Vec<String>,
    /// Secondary indexes (field names).
    pub indexes: Vec<Index>,
    /// Fields whose values never leave the server (password hashes, phone numbers): stored and
    /// writable, stripped from every row rendered for a client ([`crate::render`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<String>,
    /// No row of this table ever leaves the server; writes are still accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
}

/// One field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Logical name as records carry it.
    pub name: String,
    /// Column name (`columnName` in the designer format). Records may use either name.
    pub column: String,
    /// Normalized type.
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// The type name as written in the source, for reporting.
    pub source_type: String,
    /// Whether null (or absence) is allowed.
    pub nullable: bool,
    /// Value used when an insert omits the field.
    pub default: Option<DefaultValue>,
    /// Maximum length in characters, for text.
    pub max_length: Option<u32>,
    /// Allowed values, when the schema restricts them.
    pub enum_values: Option<Vec<Value>>,
    /// Part of the primary key.
    pub primary_key: bool,
    /// Declared unique on its own.
    pub unique: bool,
    /// Declared indexed on its own.
    pub indexed: bool,
    /// Foreign key, informational (not enforced: seeds of real deployments violate them).
    pub references: Option<Reference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultValue {
    /// A literal JSON value.
    Value(Value),
    /// The time of the write (`NOW_ISO`, `getdate()`, `CURRENT_TIMESTAMP`).
    Now,
}

/// A foreign-key reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Referenced table.
    pub table: String,
    /// Referenced field or column.
    pub field: String,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Index name (generated when the source has none).
    pub name: String,
    /// Field names (logical).
    pub fields: Vec<String>,
    /// Unique index.
    pub unique: bool,
}

impl Field {
    /// A nullable text field named `name`, the base every parser refines.
    pub fn new(name: &str, ty: FieldType) -> Field {
        Field {
            name: name.to_owned(),
            column: name.to_owned(),
            ty,
            source_type: ty.as_str().to_owned(),
            nullable: true,
            default: None,
            max_length: None,
            enum_values: None,
            primary_key: false,
            unique: false,
            indexed: false,
            references: None,
        }
    }

    /// Whether the engine maintains this field itself (`version`, `createdAt`, `updatedAt`).
    pub fn is_system(&self) -> bool {
        matches!(self.name.as_str(), VERSION_FIELD | CREATED_AT_FIELD | UPDATED_AT_FIELD)
    }
}

impl Table {
    /// Looks a field up by logical name, then by column name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name).or_else(|| self.fields.iter().find(|f| f.column == name))
    }

    /// Fills what the source left implicit: a primary key (declared fields, else `id`), and maps
    /// index columns given as column names back to field names.
    pub(crate) fn finish(mut self, warnings: &mut Vec<SchemaWarning>) -> Table {
        if self.primary_key.is_empty() {
            self.primary_key = self.fields.iter().filter(|f| f.primary_key).map(|f| f.name.clone()).collect();
        }
        if self.primary_key.is_empty() {
            let id = self.fields.iter().find(|f| f.name.eq_ignore_ascii_case("id")).map(|f| f.name.clone());
            match id {
                Some(id) => self.primary_key.push(id),
                None => warnings.push(SchemaWarning {
                    table: self.name.clone(),
                    field: None,
                    message: "no primary key and no `id` field: records are keyed by an `id` property".into(),
                }),
            }
        }
        let primary_key = self.primary_key.clone();
        for field in &mut self.fields {
            if primary_key.contains(&field.name) {
                field.primary_key = true;
                field.nullable = false;
            }
        }
        let mut indexes = std::mem::take(&mut self.indexes);
        for index in &mut indexes {
            for name in &mut index.fields {
                if let Some(field) = self.field(name) {
                    *name = field.name.clone();
                } else {
                    warnings.push(SchemaWarning {
                        table: self.name.clone(),
                        field: Some(name.clone()),
                        message: format!("index `{}` names an unknown field", index.name),
                    });
                }
            }
        }
        indexes.retain(|i| i.fields.iter().all(|n| self.fields.iter().any(|f| &f.name == n)));
        self.indexes = indexes;
        self
    }

    /// The primary key field names, or `["id"]` for a table that declares none.
    pub fn key_fields(&self) -> Vec<&str> {
        if self.primary_key.is_empty() {
            vec!["id"]
        } else {
            self.primary_key.iter().map(String::as_str).collect()
        }
    }
}

impl Schema {
    /// Adds a parsed table. A table defined twice keeps its first definition and gains the second's
    /// extra fields, with a warning (the real POS schema defines `pos_database` twice).
    pub(crate) fn insert_table(&mut self, table: Table) {
        let table = table.finish(&mut self.warnings);
        match self.tables.get_mut(&table.name) {
            None => {
                self.tables.insert(table.name.clone(), table);
            }
            Some(existing) => {
                self.warnings.push(SchemaWarning {
                    table: table.name.clone(),
                    field: None,
                    message: "table defined twice: definitions merged, first wins per field".into(),
                });
                for field in table.fields {
                    if existing.field(&field.name).is_none() {
                        existing.fields.push(field);
                    }
                }
            }
        }
    }

    /// Looks a table up by its exact name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Resolves the names seeds and old clients use for a table, as the original's
    /// `findCanonicalTableName` did and a little more: exact; then the same lower-cased; the
    /// original's aliases (`orders` → `order_header`, `payments` → `order_payment`...); then
    /// `camelCase` → `snake_case`; then singular/plural variants (`pos_shifts` → `pos_shift`,
    /// `auditEvents` → `audit_events`, `order_payment_states` → `order_payment_state`).
    pub fn resolve_table(&self, name: &str) -> Option<&Table> {
        if let Some(t) = self.tables.get(name) {
            return Some(t);
        }
        let lower = name.to_lowercase();
        let alias = TABLE_ALIASES.iter().find(|(a, _)| *a == lower).map(|(_, target)| (*target).to_owned());
        let snake = to_snake_case(name);
        let singular = |n: &str| n.strip_suffix('s').filter(|n| !n.ends_with('s')).map(str::to_owned);
        let candidates = [
            Some(lower.clone()),
            alias,
            Some(snake.clone()),
            singular(&lower),
            singular(&snake),
            Some(format!("{lower}s")),
            Some(format!("{snake}s")),
        ];
        candidates.iter().flatten().find_map(|c| self.tables.get(c))
    }
}

/// The original's table aliases (lower-cased name → table), used when the target exists.
const TABLE_ALIASES: &[(&str, &str)] = &[
    ("orders", "order_header"),
    ("order_lines", "order_line"),
    ("order_payments", "order_payment"),
    ("payments", "order_payment"),
    ("job_orders", "job_order_header"),
    ("job_order_headers", "job_order_header"),
    ("job_order_details", "job_order_detail"),
    ("deliveries", "order_delivery"),
    ("order_deliveries", "order_delivery"),
];

/// `tableLocks` → `table_locks`; leaves snake_case untouched.
pub fn to_snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> Table {
        Table {
            name: name.into(),
            sql_name: name.into(),
            fields: vec![],
            primary_key: vec![],
            indexes: vec![],
            hidden: vec![],
            locked: false,
        }
    }

    #[test]
    fn resolves_seed_aliases() {
        let mut schema = Schema::default();
        for name in ["audit_events", "table_lock", "order_payment_state"] {
            schema.insert_table(table(name));
        }
        assert_eq!(schema.resolve_table("auditEvents").unwrap().name, "audit_events");
        assert_eq!(schema.resolve_table("tableLocks").unwrap().name, "table_lock");
        assert_eq!(schema.resolve_table("order_payment_states").unwrap().name, "order_payment_state");
        assert!(schema.resolve_table("stores").is_none());
    }

    #[test]
    fn resolves_the_original_clients_names() {
        let mut schema = Schema::default();
        for name in ["pos_shift", "menu_items", "delivery_drivers", "order_header", "order_payment", "job_order_header"]
        {
            schema.insert_table(table(name));
        }
        let cases = [
            ("pos_shifts", "pos_shift"),
            ("menu_item", "menu_items"),
            ("delivery_driver", "delivery_drivers"),
            ("orders", "order_header"),
            ("Orders", "order_header"),
            ("orderHeader", "order_header"),
            ("Order_Header", "order_header"),
            ("payments", "order_payment"),
            ("job_orders", "job_order_header"),
        ];
        for (name, expected) in cases {
            assert_eq!(schema.resolve_table(name).map(|t| t.name.as_str()), Some(expected), "{name}");
        }
        assert!(schema.resolve_table("nothing").is_none());
        assert!(schema.resolve_table("").is_none());
    }

    #[test]
    fn primary_key_falls_back_to_id() {
        let mut t = table("t");
        t.fields.push(Field::new("id", FieldType::Text));
        let t = t.finish(&mut vec![]);
        assert_eq!(t.primary_key, vec!["id"]);
        assert!(!t.fields[0].nullable);
    }
}
