//! What a client may see of stored data. Every row, event and snapshot the server sends passes
//! through here: hidden fields are stripped, rows of locked tables are withheld, and translations
//! are joined ([`translate`]). The security rules will extend this same step; a second way out is
//! how leaks happen.
//!
//! Tables with nothing hidden cost nothing: rows are borrowed, not copied.
//!
//! ```
//! use mishkah_core::render::client_row;
//! use mishkah_core::Schema;
//! use serde_json::json;
//!
//! let mut schema = Schema::from_json(&json!({"tables": {"users": {"fields": {
//!     "id": {"type": "text", "primaryKey": true}, "passwordHash": {"type": "text"}}}}})).unwrap();
//! schema.tables.get_mut("users").unwrap().hidden.push("passwordHash".into());
//! let row = json!({"id": "u1", "passwordHash": "$2b$..."}).as_object().unwrap().clone();
//! let seen = client_row(schema.table("users").unwrap(), &row).unwrap();
//! assert_eq!(serde_json::Value::Object(seen.into_owned()), json!({"id": "u1"}));
//! ```

pub mod secrets;
pub mod translate;

use std::borrow::Cow;

use crate::mutation::Change;
use crate::record::Row;
use crate::schema::Table;
use crate::sync::ChangeEvent;

impl Table {
    /// Whether the property `name` of this table's rows is hidden. Case-insensitive: a field
    /// spelled `Phone` by one writer and `phone` by another is hidden both ways.
    pub fn hides(&self, name: &str) -> bool {
        self.hidden.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Hides the property `name`, and the schema's name and column of that field: a writer may
    /// send it under either.
    pub fn hide(&mut self, name: &str) {
        let spellings = match self.field(name) {
            Some(f) => vec![name.to_owned(), f.name.clone(), f.column.clone()],
            None => vec![name.to_owned()],
        };
        for s in spellings {
            if !self.hides(&s) {
                self.hidden.push(s);
            }
        }
    }
}

/// `row` as a client may see it; `None` for a row of a locked table.
pub fn client_row<'r>(table: &Table, row: &'r Row) -> Option<Cow<'r, Row>> {
    if table.locked {
        return None;
    }
    if table.hidden.is_empty() || !row.keys().any(|k| table.hides(k)) {
        return Some(Cow::Borrowed(row));
    }
    Some(Cow::Owned(row.iter().filter(|(k, _)| !table.hides(k)).map(|(k, v)| (k.clone(), v.clone())).collect()))
}

/// Rows of `table` as a client may see them, consuming them (no copy); none for a locked table.
pub fn client_rows(table: &Table, mut rows: Vec<Row>) -> Vec<Row> {
    if table.locked {
        return Vec::new();
    }
    if !table.hidden.is_empty() {
        for row in &mut rows {
            row.retain(|k, _| !table.hides(k));
        }
    }
    rows
}

/// A committed change as a client may see it; `None` for a change of a locked table. `table` is
/// the event's table (`None` when the schema lacks it: nothing is known to hide).
pub fn client_event<'e>(table: Option<&Table>, event: &'e ChangeEvent) -> Option<Cow<'e, ChangeEvent>> {
    let Some(table) = table else { return Some(Cow::Borrowed(event)) };
    match event.change.row.as_ref().map(|row| client_row(table, row)) {
        None if table.locked => None,
        None | Some(Some(Cow::Borrowed(_))) => Some(Cow::Borrowed(event)),
        Some(None) => None,
        // Built field by field: cloning the event would copy the row only to drop it.
        Some(Some(Cow::Owned(row))) => Some(Cow::Owned(ChangeEvent {
            sequence: event.sequence,
            event_id: event.event_id.clone(),
            mutation_id: event.mutation_id.clone(),
            created_at: event.created_at.clone(),
            transaction_id: event.transaction_id.clone(),
            change: Change {
                table: event.change.table.clone(),
                key: event.change.key.clone(),
                kind: event.change.kind,
                row: Some(row),
                version: event.change.version,
                coerced: event.change.coerced.clone(),
                unknown_fields: event.change.unknown_fields.clone(),
                tolerated: event.change.tolerated.clone(),
            },
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::ChangeKind;
    use crate::record::RecordKey;
    use serde_json::json;

    fn users(hidden: &[&str], locked: bool) -> Table {
        let schema = crate::Schema::from_json(&json!({"tables": {"users": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "phone": {"type": "text"}}}}}))
        .unwrap();
        let mut t = schema.table("users").unwrap().clone();
        t.hidden = hidden.iter().map(|s| s.to_string()).collect();
        t.locked = locked;
        t
    }

    fn event(row: Option<serde_json::Value>) -> ChangeEvent {
        ChangeEvent {
            sequence: 1,
            event_id: "evt-1".into(),
            mutation_id: None,
            created_at: "2025-01-01T00:00:00.000Z".into(),
            transaction_id: None,
            change: Change {
                table: "users".into(),
                key: RecordKey::from("u1"),
                kind: if row.is_some() { ChangeKind::Insert } else { ChangeKind::Delete },
                row: row.map(|r| r.as_object().unwrap().clone()),
                version: 1,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: vec![],
            },
        }
    }

    #[test]
    fn hidden_fields_are_stripped_in_any_spelling_and_others_are_borrowed() {
        let row = json!({"id": "u1", "Phone": "+20", "name": "A"}).as_object().unwrap().clone();
        let seen = client_row(&users(&["phone"], false), &row).unwrap();
        assert_eq!(seen.keys().collect::<Vec<_>>(), vec!["id", "name"]);
        assert!(matches!(client_row(&users(&[], false), &row), Some(Cow::Borrowed(_))));
        assert_eq!(client_rows(&users(&["PHONE"], false), vec![row.clone()])[0].len(), 2);
    }

    #[test]
    fn locked_tables_show_nothing_not_even_deletes() {
        let row = json!({"id": "u1"}).as_object().unwrap().clone();
        let locked = users(&[], true);
        assert!(client_row(&locked, &row).is_none());
        assert!(client_rows(&locked, vec![row.clone()]).is_empty());
        assert!(client_event(Some(&locked), &event(Some(json!({"id": "u1"})))).is_none());
        assert!(client_event(Some(&locked), &event(None)).is_none());
    }

    #[test]
    fn events_lose_hidden_fields_and_keep_the_rest() {
        let e = event(Some(json!({"id": "u1", "phone": "+20"})));
        let seen = client_event(Some(&users(&["phone"], false)), &e).unwrap();
        assert_eq!(seen.change.row.as_ref().unwrap().len(), 1);
        assert_eq!(seen.sequence, 1);
        assert!(matches!(client_event(Some(&users(&[], false)), &e), Some(Cow::Borrowed(_))));
        assert!(matches!(client_event(None, &e), Some(Cow::Borrowed(_))));
    }
}
