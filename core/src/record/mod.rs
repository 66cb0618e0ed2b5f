//! Records: JSON objects keyed by their table's primary key, and their validation.
//!
//! Records keep the property names their writer used: a field may be written under its logical
//! name (`categoryId`) or its column name (`category_id`), and properties the schema lacks are kept
//! as they are (the original silently dropped them; we never do).

mod fill;
mod key;
mod validate;

pub use fill::{backfill, backfill_value, fill_key, fill_missing, is_missing, type_default, MissingFields};
pub use key::{KeyError, RecordKey};
pub use validate::{fits_type, validate, validate_values, FieldError, Strictness, Validated, ValidationErrors, Values};

/// A record: a JSON object.
pub type Row = serde_json::Map<String, serde_json::Value>;
