//! Field types and the mapping from every type name seen in real schemas.

use serde::{Deserialize, Serialize};

/// The normalized field types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Strings of any length (`string`, `text`, `NVARCHAR(n)`, `CHAR(n)`, `uuid`...).
    Text,
    /// 64-bit integers (`integer`, `INT`, `BIGINT`...).
    Integer,
    /// Numbers with a fraction (`decimal`, `number`, `DECIMAL(18,2)`, `float`...).
    Decimal,
    /// `boolean`, `bool`, `BIT`.
    Boolean,
    /// A calendar date, stored as `YYYY-MM-DD`.
    Date,
    /// A point in time, stored as ISO-8601 UTC with milliseconds.
    Timestamp,
    /// Any JSON value (`json`, `object`, `array`).
    Json,
}

impl FieldType {
    /// Maps a type name from any of the three formats. Parameters (`NVARCHAR(60)`) are ignored here;
    /// see `length_parameter`. Returns `None` for a name we do not know: the caller falls back to
    /// [`FieldType::Text`] and records a warning, since text holds any scalar without loss.
    pub fn from_type_name(name: &str) -> Option<FieldType> {
        let base = name.split('(').next().unwrap_or(name).trim().to_ascii_lowercase();
        let ty = match base.as_str() {
            "string" | "text" | "varchar" | "nvarchar" | "char" | "nchar" | "ntext" | "uuid" | "uniqueidentifier"
            | "enum" | "email" | "url" | "time" => FieldType::Text,
            "integer" | "int" | "bigint" | "smallint" | "tinyint" | "serial" | "bigserial" | "int64" => {
                FieldType::Integer
            }
            "number" | "decimal" | "numeric" | "float" | "double" | "real" | "money" | "smallmoney" => {
                FieldType::Decimal
            }
            "boolean" | "bool" | "bit" => FieldType::Boolean,
            "date" => FieldType::Date,
            "datetime" | "datetime2" | "timestamp" | "timestamptz" | "smalldatetime" | "datetimeoffset" => {
                FieldType::Timestamp
            }
            "json" | "jsonb" | "object" | "array" => FieldType::Json,
            _ => return None,
        };
        Some(ty)
    }

    /// The lowercase name used on the wire and in `/api/schema`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Timestamp => "timestamp",
            FieldType::Json => "json",
        }
    }
}

/// The length in a SQL type such as `NVARCHAR(60)` or `CHAR(2)`; `None` for `NVARCHAR(MAX)`, decimals
/// and types without a parameter.
pub fn length_parameter(type_name: &str) -> Option<u32> {
    let lower = type_name.to_ascii_lowercase();
    if !(lower.contains("char")) {
        return None;
    }
    let inner = lower.split_once('(')?.1.split(')').next()?;
    inner.trim().parse().ok()
}

/// Resolves a type name for `table.field`, falling back to text with a warning for unknown names.
pub(crate) fn resolve_type(
    table: &str,
    field: &str,
    type_name: Option<&str>,
    warnings: &mut Vec<super::SchemaWarning>,
) -> FieldType {
    let Some(type_name) = type_name else {
        warnings.push(super::SchemaWarning {
            table: table.to_owned(),
            field: Some(field.to_owned()),
            message: "no type given: treated as text".into(),
        });
        return FieldType::Text;
    };
    FieldType::from_type_name(type_name).unwrap_or_else(|| {
        warnings.push(super::SchemaWarning {
            table: table.to_owned(),
            field: Some(field.to_owned()),
            message: format!("unknown type `{type_name}`: treated as text"),
        });
        FieldType::Text
    })
}

/// Reads a default: literal JSON, or the "now" spellings of the three formats.
pub(crate) fn parse_default(value: Option<&serde_json::Value>, ty: FieldType) -> Option<super::DefaultValue> {
    use super::DefaultValue;
    let value = value?;
    if let Some(text) = value.as_str() {
        let lower = text.trim().to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "now_iso" | "now" | "now()" | "getdate()" | "getutcdate()" | "current_timestamp" | "sysdatetime()"
        ) {
            return Some(DefaultValue::Now);
        }
        // SQL-column schemas write every default as a string: `"1"` for a BIT, `"0"` for an INT.
        let typed = match ty {
            FieldType::Boolean => match lower.as_str() {
                "1" | "true" => Some(serde_json::Value::Bool(true)),
                "0" | "false" => Some(serde_json::Value::Bool(false)),
                _ => None,
            },
            FieldType::Integer => lower.parse::<i64>().ok().map(Into::into),
            FieldType::Decimal => lower.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Into::into),
            _ => None,
        };
        let unquoted = text.trim().trim_matches('\'').to_owned();
        return Some(DefaultValue::Value(typed.unwrap_or(serde_json::Value::String(unquoted))));
    }
    Some(DefaultValue::Value(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_names_from_all_formats() {
        assert_eq!(FieldType::from_type_name("NVARCHAR(60)"), Some(FieldType::Text));
        assert_eq!(FieldType::from_type_name("DECIMAL(18,2)"), Some(FieldType::Decimal));
        assert_eq!(FieldType::from_type_name("BIT"), Some(FieldType::Boolean));
        assert_eq!(FieldType::from_type_name("DATETIME"), Some(FieldType::Timestamp));
        assert_eq!(FieldType::from_type_name("object"), Some(FieldType::Json));
        assert_eq!(FieldType::from_type_name("geography"), None);
    }

    #[test]
    fn reads_char_lengths_only() {
        assert_eq!(length_parameter("NVARCHAR(60)"), Some(60));
        assert_eq!(length_parameter("CHAR(2)"), Some(2));
        assert_eq!(length_parameter("NVARCHAR(MAX)"), None);
        assert_eq!(length_parameter("DECIMAL(10,2)"), None);
    }
}
