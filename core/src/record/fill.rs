//! Missing fields on insert, filled the way the original filled them, so that its clients, which
//! insert an `order_header` with three or four fields, keep working.
//!
//! For each schema field the record lacks (absent, `null` or `""`), in this order: a generated id
//! for a missing primary key ([`fill_key`], done by the caller, who needs the key to find the
//! stored row); the connection's branch for `branchId`; the current time for a timestamp named
//! `createdAt`, `updatedAt`, `serverAt` or ending in `At`; the field's `defaultValue`; otherwise the
//! type's default ([`type_default`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Row;
use crate::schema::{DefaultValue, Field, FieldType, Table};
use crate::time::Timestamp;

/// What an insert that lacks required fields gets: the operator's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingFields {
    /// Fill them as the original did (the default: existing clients depend on it).
    #[default]
    Fill,
    /// Refuse the insert with `validation-failed` (rule `required`).
    Refuse,
}

impl MissingFields {
    /// `fill` or `refuse`.
    pub fn parse(text: &str) -> Option<MissingFields> {
        match text.trim().to_ascii_lowercase().as_str() {
            "fill" => Some(MissingFields::Fill),
            "refuse" => Some(MissingFields::Refuse),
            _ => None,
        }
    }
}

/// Whether a value counts as missing: absent, `null` or the empty string.
pub fn is_missing(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    }
}

/// The property under which `row` carries `field` (its name or its column), if any.
fn property<'f>(field: &'f Field, row: &Row) -> Option<&'f str> {
    [field.name.as_str(), field.column.as_str()].into_iter().find(|k| row.contains_key(*k))
}

fn set(row: &mut Row, field: &Field, value: Value) {
    let name = property(field, row).unwrap_or(&field.name).to_owned();
    row.insert(name, value);
}

fn is_missing_in(field: &Field, row: &Row) -> bool {
    is_missing(property(field, row).and_then(|k| row.get(k)))
}

/// Fills missing primary-key fields from `fresh_id` (text keys get it as is; numeric keys get
/// the 52-bit number its first 13 hex digits spell, so one fresh id serves either). Returns
/// whether anything was filled. The caller draws `fresh_id` (core draws no random numbers); the
/// browser store does it before queuing the write, so its optimistic row and the server's stored
/// row carry the same key.
pub fn fill_key(table: &Table, row: &mut Row, fresh_id: &str) -> bool {
    let mut filled = false;
    for name in table.key_fields() {
        let untyped;
        let field = match table.field(name) {
            Some(field) => field,
            None => {
                untyped = Field::new(name, FieldType::Text);
                &untyped
            }
        };
        if !is_missing_in(field, row) {
            continue;
        }
        let value = match field.ty {
            FieldType::Integer | FieldType::Decimal => Value::from(numeric_id(fresh_id)),
            // A generated key must fit the key's own limit (real schemas cap ids at 32).
            _ => Value::String(match field.max_length {
                Some(max) => fresh_id.chars().take(max.max(1) as usize).collect(),
                None => fresh_id.to_owned(),
            }),
        };
        set(row, field, value);
        filled = true;
    }
    filled
}

fn numeric_id(fresh_id: &str) -> i64 {
    let hex: String = fresh_id.chars().filter(char::is_ascii_hexdigit).take(13).collect();
    match i64::from_str_radix(&hex, 16) {
        Ok(n) if n > 0 => n,
        // Not hex (a caller's own id scheme): a stable hash of it, still within 52 bits.
        _ => {
            fresh_id.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211)) as i64
                & 0x000F_FFFF_FFFF_FFFF
        }
    }
}

/// Names of the timestamp fields the original stamps with the time of the insert.
fn is_time_stamped(field: &Field) -> bool {
    field.ty == FieldType::Timestamp
        && (matches!(field.name.as_str(), "createdAt" | "updatedAt" | "serverAt") || field.name.ends_with("At"))
}

fn is_branch_field(field: &Field) -> bool {
    field.name == "branchId" || field.name.eq_ignore_ascii_case("branch_id")
}

/// The value a missing field of type `field.ty` gets when nothing more specific applies: text
/// `""`, numbers `0`, booleans `false` (each `null` when the field is nullable), JSON `{}`,
/// timestamps `now`, dates today. A field restricted to an enum that excludes that value gets
/// the enum's first value instead: filling must never produce a row its own schema refuses.
pub fn type_default(field: &Field, now: Timestamp) -> Value {
    let value = match field.ty {
        FieldType::Text if field.nullable => Value::Null,
        FieldType::Text => Value::String(String::new()),
        FieldType::Integer | FieldType::Decimal if field.nullable => Value::Null,
        FieldType::Integer | FieldType::Decimal => Value::from(0),
        FieldType::Boolean if field.nullable => Value::Null,
        FieldType::Boolean => Value::Bool(false),
        FieldType::Json => Value::Object(Row::new()),
        FieldType::Timestamp => Value::String(now.to_iso()),
        FieldType::Date => Value::String(now.to_iso()[..10].to_owned()),
    };
    match &field.enum_values {
        Some(allowed) if !value.is_null() && !allowed.contains(&value) => allowed.first().cloned().unwrap_or(value),
        _ => value,
    }
}

/// Fills every missing non-key field of `row` (see the module doc). Returns how many it filled.
pub fn fill_missing(table: &Table, row: &mut Row, now: Timestamp, branch_id: Option<&str>) -> usize {
    // Formatted once: a sparse insert may stamp several fields.
    let iso = std::cell::OnceCell::new();
    let now_text = || Value::String(iso.get_or_init(|| now.to_iso()).clone());
    let mut filled = 0;
    for field in &table.fields {
        if field.primary_key || !is_missing_in(field, row) {
            continue;
        }
        let value = match (&field.default, branch_id) {
            (_, Some(branch)) if is_branch_field(field) => Value::String(branch.to_owned()),
            _ if is_time_stamped(field) => now_text(),
            (Some(DefaultValue::Value(v)), _) => v.clone(),
            (Some(DefaultValue::Now), _) => now_text(),
            (None, _) => type_default(field, now),
        };
        set(row, field, value);
        filled += 1;
    }
    filled
}

/// The value a row stored before `field` was added gets when the schema gains it: its literal
/// default (a field without one, or defaulting to the time of the write, gets nothing: no value
/// would be true of old rows).
pub fn backfill_value(field: &Field) -> Option<&Value> {
    match &field.default {
        Some(DefaultValue::Value(v)) if !v.is_null() && !field.primary_key && !field.is_system() => Some(v),
        _ => None,
    }
}

/// The properties backfilling gives `row`: each field with a [`backfill_value`] the row lacks
/// (absent; or `null` where the field may not be null). Empty when there is nothing to do, so
/// running it again changes nothing.
pub fn backfill(table: &Table, row: &Row) -> Row {
    let mut patch = Row::new();
    for field in &table.fields {
        let Some(value) = backfill_value(field) else { continue };
        let lacks = match property(field, row).and_then(|k| row.get(k)) {
            None => true,
            Some(Value::Null) => !field.nullable,
            Some(_) => false,
        };
        if lacks {
            patch.insert(field.name.clone(), value.clone());
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use serde_json::json;

    fn order_header() -> Table {
        let schema = Schema::from_json(&json!({"tables": {"order_header": {"fields": {
            "id": {"type": "text", "primaryKey": true},
            "branchId": {"type": "text", "nullable": false},
            "statusId": {"type": "text", "nullable": false, "defaultValue": "open"},
            "subtotal": {"type": "decimal", "nullable": false},
            "guests": {"type": "integer"},
            "isPaid": {"type": "boolean", "nullable": false},
            "notes": {"type": "text"},
            "meta": {"type": "json"},
            "openedAt": {"type": "timestamp", "defaultValue": "2000-01-01T00:00:00.000Z"},
            "businessDay": {"type": "date", "nullable": false},
            "kind": {"type": "text", "nullable": false, "enum": ["dine-in", "takeaway"]}
        }}}}))
        .unwrap();
        schema.table("order_header").unwrap().clone()
    }

    #[test]
    fn fills_in_the_originals_order() {
        let table = order_header();
        let mut row = json!({"notes": "", "guests": null}).as_object().unwrap().clone();
        assert!(fill_key(&table, &mut row, "0f3a9c"));
        let filled = fill_missing(&table, &mut row, Timestamp(1_765_030_940_349), Some("dar"));
        assert_eq!(
            Value::Object(row),
            json!({"id": "0f3a9c", "branchId": "dar", "statusId": "open", "subtotal": 0, "guests": null,
                   "isPaid": false, "notes": null, "meta": {}, "openedAt": "2025-12-06T14:22:20.349Z",
                   "businessDay": "2025-12-06", "kind": "dine-in"})
        );
        assert_eq!(filled, 10);
    }

    #[test]
    fn present_values_and_column_spellings_are_kept() {
        let table = order_header();
        let mut row = json!({"id": "o1", "statusId": "paid", "subtotal": "12.5"}).as_object().unwrap().clone();
        assert!(!fill_key(&table, &mut row, "x"));
        fill_missing(&table, &mut row, Timestamp(0), None);
        assert_eq!(row["statusId"], json!("paid"));
        assert_eq!(row["subtotal"], json!("12.5"), "coercion is validation's job");
        assert_eq!(row["branchId"], json!(""), "no branch known: the type's default");
    }

    #[test]
    fn a_generated_key_fits_the_keys_max_length() {
        let schema = Schema::from_json(
            &json!({"tables": {"t": {"fields": {"id": {"type": "text", "primaryKey": true, "maxLength": 8}}}}}),
        )
        .unwrap();
        let mut row = Row::new();
        fill_key(schema.table("t").unwrap(), &mut row, "0f3a9c2e71b44c1d9a55d0c3b0e1f2a4");
        assert_eq!(row["id"], json!("0f3a9c2e"));
    }

    #[test]
    fn numeric_keys_get_a_number_from_the_fresh_id() {
        let schema =
            Schema::from_json(&json!({"tables": {"t": {"fields": {"n": {"type": "integer", "primaryKey": true}}}}}))
                .unwrap();
        let mut row = Row::new();
        fill_key(schema.table("t").unwrap(), &mut row, "00000000000ff-rest");
        assert_eq!(row["n"], json!(255));
        let mut other = Row::new();
        fill_key(schema.table("t").unwrap(), &mut other, "not-hex-at-all");
        assert!(other["n"].as_i64().is_some_and(|n| n > 0 && n < 1 << 52));
    }

    #[test]
    fn the_mode_parses() {
        assert_eq!(MissingFields::parse("Refuse"), Some(MissingFields::Refuse));
        assert_eq!(MissingFields::parse("fill"), Some(MissingFields::Fill));
        assert_eq!(MissingFields::parse("strict"), None);
    }

    #[test]
    fn backfill_gives_old_rows_literal_defaults_once() {
        let table = order_header();
        let row = |v: Value| v.as_object().unwrap().clone();
        // Absent: both literal defaults; `null` in a field that may not be null: its default.
        let patch = backfill(&table, &row(json!({"id": "a", "statusId": null})));
        assert_eq!(Value::Object(patch), json!({"statusId": "open", "openedAt": "2000-01-01T00:00:00.000Z"}));
        // `null` where null is allowed was someone's value.
        assert!(backfill(&table, &row(json!({"id": "a", "statusId": "paid", "openedAt": null}))).is_empty());
        let mut filled = row(json!({"id": "a"}));
        filled.extend(backfill(&table, &filled));
        assert!(backfill(&table, &filled).is_empty(), "a second run changes nothing");
    }
}
