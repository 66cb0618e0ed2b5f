//! Validation with coercion, the way the original system coerces: `"12"` → 12 for an integer,
//! `"true"` → true for a boolean, timestamps normalized to ISO-8601 UTC with milliseconds.
//! All problems of a record are reported at once.

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::Row;
use crate::schema::{Field, FieldType, Table};
use crate::time::{normalize_date, Timestamp};

/// How missing required fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Client writes: a missing non-nullable field without default is an error.
    Strict,
    /// Imports of existing data (seeds, restores): such rows already exist in the field, so a missing
    /// required field is reported in [`Validated::tolerated`] instead of refusing the row. Type, length
    /// and enum errors still refuse it.
    Import,
}

/// What a value that breaks its field's type, length or enum does to a client's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Values {
    /// It is stored as sent, as the original stored it (its apps send such values in normal
    /// use); the problem is reported in [`Validated::tolerated`].
    #[default]
    Lenient,
    /// It refuses the write (`validation-failed`).
    Strict,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field (logical name).
    pub field: String,
    /// The rule broken: `required`, `type`, `max-length`, `enum`.
    pub rule: String,
    /// A human-readable explanation.
    pub message: String,
}

/// Every problem of a refused record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("validation failed for `{table}`: {}", summary(.errors))]
pub struct ValidationErrors {
    pub table: String,
    /// The problems, in field order.
    pub errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{} ({})", e.field, e.rule)).collect::<Vec<_>>().join(", ")
}

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The record with coerced values, under the property names its writer used.
    pub row: Row,
    /// Fields whose value was coerced (`"12"` → 12).
    pub coerced: Vec<String>,
    /// Properties the schema does not know; kept in the record.
    pub unknown: Vec<String>,
    /// Problems tolerated: missing required fields under [`Strictness::Import`], and type, length
    /// and enum problems of the fields [`validate_values`] was told to tolerate (kept as sent).
    pub tolerated: Vec<FieldError>,
}

/// Validates and coerces `row` against `table`. Takes the row by value: coercion rewrites it in
/// place instead of copying it (this runs once per write).
pub fn validate(table: &Table, row: Row, strictness: Strictness) -> Result<Validated, ValidationErrors> {
    validate_values(table, row, strictness, |_| false)
}

/// [`validate`], where a type, length or enum problem of a field `tolerate` names keeps the value
/// as sent and is reported in [`Validated::tolerated`] instead of refusing the row.
pub fn validate_values(
    table: &Table,
    mut row: Row,
    strictness: Strictness,
    tolerate: impl Fn(&Field) -> bool,
) -> Result<Validated, ValidationErrors> {
    let mut errors = Vec::new();
    let mut coerced = Vec::new();
    let mut tolerated = Vec::new();
    for field in &table.fields {
        let key = [&field.name, &field.column].into_iter().find(|k| row.contains_key(k.as_str()));
        let Some(key) = key.filter(|k| row.get(k.as_str()).is_some_and(|v| !v.is_null())) else {
            if !field.nullable && field.default.is_none() && !field.is_system() {
                let error = FieldError {
                    field: field.name.clone(),
                    rule: "required".into(),
                    message: format!("`{}` is required", field.name),
                };
                match strictness {
                    Strictness::Strict => errors.push(error),
                    Strictness::Import => tolerated.push(error),
                }
            }
            continue;
        };
        match row.get(key.as_str()).map(|value| coerce(field, value)) {
            Some(Ok(Coerced::Changed(new))) => {
                coerced.push(field.name.clone());
                row.insert(key.clone(), new);
            }
            Some(Err(message)) => {
                let error = FieldError { field: field.name.clone(), rule: "type".into(), message };
                match tolerate(field) {
                    true => tolerated.push(error),
                    false => errors.push(error),
                }
                continue;
            }
            Some(Ok(Coerced::Same)) | None => {}
        }
        let Some(value) = row.get(key.as_str()) else { continue };
        if let (Some(max), Some(text)) = (field.max_length, value.as_str()) {
            let len = text.chars().count();
            if len > max as usize {
                let sink = if tolerate(field) { &mut tolerated } else { &mut errors };
                sink.push(FieldError {
                    field: field.name.clone(),
                    rule: "max-length".into(),
                    message: format!("`{}` is {len} characters long, at most {max} allowed", field.name),
                });
            }
        }
        if let Some(allowed) = &field.enum_values {
            if !allowed.contains(value) {
                let sink = if tolerate(field) { &mut tolerated } else { &mut errors };
                sink.push(FieldError {
                    field: field.name.clone(),
                    rule: "enum".into(),
                    message: format!("`{}` must be one of {}", field.name, Value::Array(allowed.clone())),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ValidationErrors { table: table.name.clone(), errors });
    }
    let unknown = row.keys().filter(|k| table.field(k).is_none() && !is_system_name(k)).cloned().collect();
    Ok(Validated { row, coerced, unknown, tolerated })
}

/// Whether `value` is (or converts to, as a write would convert it) a value of `field`'s type:
/// what a stored value must be for the field's type to change under it. `null` always is.
pub fn fits_type(field: &Field, value: &Value) -> Result<(), String> {
    match value {
        Value::Null => Ok(()),
        value => coerce(field, value).map(|_| ()),
    }
}

fn is_system_name(name: &str) -> bool {
    matches!(name, "version" | "createdAt" | "updatedAt")
}

enum Coerced {
    Same,
    Changed(Value),
}

fn coerce(field: &Field, value: &Value) -> Result<Coerced, String> {
    let name = &field.name;
    let mismatch = |what: &str| format!("`{name}` must be {what}, got {}", describe(value));
    match field.ty {
        FieldType::Text => match value {
            Value::String(_) => Ok(Coerced::Same),
            Value::Number(n) => Ok(Coerced::Changed(Value::String(n.to_string()))),
            Value::Bool(b) => Ok(Coerced::Changed(Value::String(b.to_string()))),
            _ => Err(mismatch("text")),
        },
        FieldType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Coerced::Same),
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Coerced::Changed(Value::from(f as i64))),
                _ => Err(mismatch("an integer")),
            },
            Value::String(s) => {
                s.trim().parse::<i64>().map(|i| Coerced::Changed(i.into())).map_err(|_| mismatch("an integer"))
            }
            _ => Err(mismatch("an integer")),
        },
        FieldType::Decimal => match value {
            Value::Number(_) => Ok(Coerced::Same),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(|n| Coerced::Changed(Value::Number(n)))
                .ok_or_else(|| mismatch("a number")),
            _ => Err(mismatch("a number")),
        },
        FieldType::Boolean => match value {
            Value::Bool(_) => Ok(Coerced::Same),
            Value::Number(n) => match n.as_i64() {
                Some(0) => Ok(Coerced::Changed(false.into())),
                Some(1) => Ok(Coerced::Changed(true.into())),
                _ => Err(mismatch("a boolean")),
            },
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(Coerced::Changed(true.into())),
                "false" | "0" | "no" | "off" => Ok(Coerced::Changed(false.into())),
                _ => Err(mismatch("a boolean")),
            },
            _ => Err(mismatch("a boolean")),
        },
        FieldType::Date => match value {
            Value::String(s) => match normalize_date(s) {
                Some(d) if &d == s => Ok(Coerced::Same),
                Some(d) => Ok(Coerced::Changed(d.into())),
                None => Err(mismatch("a date (YYYY-MM-DD)")),
            },
            _ => Err(mismatch("a date (YYYY-MM-DD)")),
        },
        FieldType::Timestamp => match value {
            Value::String(s) => match Timestamp::parse(s).map(Timestamp::to_iso) {
                Some(iso) if &iso == s => Ok(Coerced::Same),
                Some(iso) => Ok(Coerced::Changed(iso.into())),
                None => Err(mismatch("an ISO-8601 timestamp")),
            },
            // Epoch milliseconds, as `Date.now()` gives them.
            Value::Number(n) => n
                .as_i64()
                .map(|ms| Coerced::Changed(Timestamp(ms).to_iso().into()))
                .ok_or_else(|| mismatch("an ISO-8601 timestamp")),
            _ => Err(mismatch("an ISO-8601 timestamp")),
        },
        // Any JSON value is valid JSON; a string holding an object or array is parsed (the original
        // turned such strings into `{}`, losing them).
        FieldType::Json => match value {
            Value::String(s) if s.trim_start().starts_with(['{', '[']) => match serde_json::from_str::<Value>(s) {
                Ok(parsed) => Ok(Coerced::Changed(parsed)),
                Err(_) => Ok(Coerced::Same),
            },
            _ => Ok(Coerced::Same),
        },
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("text \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("text \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;
    use serde_json::json;

    fn table() -> Table {
        let schema = Schema::from_json(&json!({"tables": {"item": {"fields": {
            "id": {"type": "text", "primaryKey": true},
            "qty": {"type": "integer", "nullable": false},
            "price": {"type": "decimal"},
            "active": {"type": "boolean"},
            "at": {"type": "timestamp"},
            "day": {"type": "date"},
            "name": {"type": "string", "maxLength": 5},
            "kind": {"type": "text", "enum": ["a", "b"]},
            "meta": {"type": "json"}
        }}}}))
        .unwrap();
        schema.table("item").unwrap().clone()
    }

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn coerces_like_the_original() {
        let v = validate(
            &table(),
            row(json!({"id": "i1", "qty": "12", "price": "3.5", "active": "true",
                        "at": "2024-02-18T21:00:00+02:00", "day": "2024-02-18T10:00:00Z", "meta": "{\"a\":1}"})),
            Strictness::Strict,
        )
        .unwrap();
        assert_eq!(v.row["qty"], json!(12));
        assert_eq!(v.row["price"], json!(3.5));
        assert_eq!(v.row["active"], json!(true));
        assert_eq!(v.row["at"], json!("2024-02-18T19:00:00.000Z"));
        assert_eq!(v.row["day"], json!("2024-02-18"));
        assert_eq!(v.row["meta"], json!({"a": 1}));
        assert_eq!(v.coerced.len(), 6);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = validate(
            &table(),
            row(json!({"id": "i1", "qty": "many", "name": "too long", "kind": "c", "active": 7})),
            Strictness::Strict,
        )
        .unwrap_err();
        let rules: Vec<_> = err.errors.iter().map(|e| (e.field.as_str(), e.rule.as_str())).collect();
        assert_eq!(rules, vec![("qty", "type"), ("active", "type"), ("name", "max-length"), ("kind", "enum")]);
    }

    #[test]
    fn required_is_tolerated_only_on_import() {
        let r = row(json!({"id": "i1"}));
        let err = validate(&table(), r.clone(), Strictness::Strict).unwrap_err();
        assert_eq!(err.errors[0].rule, "required");
        let ok = validate(&table(), r, Strictness::Import).unwrap();
        assert_eq!(ok.tolerated.len(), 1);
    }

    #[test]
    fn unknown_properties_are_kept_and_reported() {
        let v = validate(&table(), row(json!({"id": "i1", "qty": 1, "status": "open"})), Strictness::Strict).unwrap();
        assert_eq!(v.row["status"], json!("open"));
        assert_eq!(v.unknown, vec!["status".to_string()]);
    }

    #[test]
    fn a_plain_string_in_a_json_field_is_kept() {
        let v = validate(&table(), row(json!({"id": "i1", "qty": 1, "meta": "note"})), Strictness::Strict).unwrap();
        assert_eq!(v.row["meta"], json!("note"));
    }
}
