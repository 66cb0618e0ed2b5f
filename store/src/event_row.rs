//! An event as every backend's log stores it: the rows after and before as JSON text, meta as
//! text, the mutation id in its stored (sender-scoped) form. One encoding for all backends, so a
//! log copied from one to another reads back the same.

use mishkah_core::{ChangeKind, Row};

use crate::{mutation_key, Before, LoggedEvent, NewEvent, StorageError};

/// The columns of one logged event, ready to bind.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub sequence: u64,
    pub event_id: String,
    /// Stored form ([`mutation_key::stored`]).
    pub mutation_id: Option<String>,
    pub table: String,
    pub action: &'static str,
    pub key: String,
    pub version: i64,
    pub row: Option<String>,
    pub created_at: String,
    pub source: String,
    pub meta: Option<String>,
    pub actor: Option<String>,
    pub digest: Option<Vec<u8>>,
    pub previous: Option<String>,
    pub table_as_sent: Option<String>,
    pub transaction: Option<String>,
}

/// `insert`, `update`, `delete`.
pub fn action_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Insert => "insert",
        ChangeKind::Update => "update",
        ChangeKind::Delete => "delete",
    }
}

/// The kind a stored action names.
pub fn action_kind(name: &str) -> Result<ChangeKind, StorageError> {
    match name {
        "insert" => Ok(ChangeKind::Insert),
        "update" => Ok(ChangeKind::Update),
        "delete" => Ok(ChangeKind::Delete),
        other => Err(StorageError::Corrupt(format!("unknown event action `{other}`"))),
    }
}

fn text(row: &Row) -> String {
    serde_json::to_string(row).expect("a JSON map serializes")
}

/// Of the texts a write transaction holds — the row it last stored `(key, doc)` and the row it
/// last read `(table, key, doc)` — those that are `change`'s row after and before it, for
/// [`EventRow::appended`].
pub fn held_texts(
    change: &mishkah_core::Change,
    stored: Option<(mishkah_core::RecordKey, String)>,
    read: Option<(String, mishkah_core::RecordKey, String)>,
) -> (Option<String>, Option<String>) {
    let row = stored.filter(|(key, _)| *key == change.key).map(|(_, doc)| doc);
    let previous = read.filter(|(table, key, _)| *table == change.table && *key == change.key).map(|(_, _, doc)| doc);
    (row, previous)
}

impl EventRow {
    /// A new event numbered `sequence`. `row_text` / `previous_text`: the JSON the backend already
    /// holds of the row after and before (serialized here when it holds none).
    pub fn appended(
        sequence: u64,
        event_id: String,
        event: &NewEvent<'_>,
        row_text: Option<String>,
        previous_text: Option<String>,
    ) -> EventRow {
        let change = &event.change;
        EventRow {
            sequence,
            event_id,
            mutation_id: event.mutation.map(|m| mutation_key::stored(m.scope, m.id)),
            table: change.table.clone(),
            action: action_name(change.kind),
            key: change.key.0.clone(),
            version: change.version,
            row: change.row.as_ref().map(|r| row_text.unwrap_or_else(|| text(r))),
            created_at: event.created_at.to_owned(),
            source: event.source.to_owned(),
            meta: (!event.meta.is_null()).then(|| event.meta.to_string()),
            actor: event.actor.map(str::to_owned),
            digest: event.mutation.map(|m| m.digest.to_vec()),
            previous: event.previous.map(|r| previous_text.unwrap_or_else(|| text(r))),
            table_as_sent: event.table_as_sent.map(str::to_owned),
            transaction: event.transaction.map(str::to_owned),
        }
    }

    /// An event of another log, as it was logged there.
    pub fn imported(logged: &LoggedEvent) -> EventRow {
        let e = &logged.event;
        EventRow {
            sequence: e.sequence,
            event_id: e.event_id.clone(),
            mutation_id: logged.mutation.as_ref().map(|m| m.stored.clone()),
            table: e.change.table.clone(),
            action: action_name(e.change.kind),
            key: e.change.key.0.clone(),
            version: e.change.version,
            row: e.change.row.as_ref().map(text),
            created_at: e.created_at.clone(),
            source: logged.source.clone(),
            meta: (!logged.meta.is_null()).then(|| logged.meta.to_string()),
            actor: logged.actor.clone(),
            digest: logged.mutation.as_ref().and_then(|m| m.digest.clone()),
            previous: match &logged.before {
                Before::Row(r) => Some(text(r)),
                Before::Absent | Before::NotKept => None,
            },
            table_as_sent: logged.table_as_sent.clone(),
            transaction: e.transaction_id.clone(),
        }
    }
}
