//! Deltas: the changes after a cursor, coalesced per row.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ChangeEvent;
use crate::record::{RecordKey, Row};

/// The rows of one table changed since a cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDelta {
    /// Rows inserted or updated, their latest state.
    pub rows: BTreeMap<RecordKey, Row>,
    /// Keys deleted (tombstones).
    pub deleted: BTreeSet<RecordKey>,
}

/// Every row changed in `(from, to]`, last change per row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The cursor the delta starts after.
    pub from: u64,
    /// The last sequence included; the client's new cursor.
    pub to: u64,
    /// Per table.
    pub tables: BTreeMap<String, TableDelta>,
}

/// A delta cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The log no longer holds the changes right after the cursor: the client must resync in full.
    #[error("cursor {cursor} is older than the retained log (oldest retained sequence {oldest_retained})")]
    CursorExpired {
        /// The client's cursor.
        cursor: u64,
        /// The first sequence still in the log.
        oldest_retained: u64,
    },
}

impl DeltaError {
    /// `requires-full-sync`.
    pub fn code(&self) -> &'static str {
        "requires-full-sync"
    }
}

impl Delta {
    /// Coalesces `events` (in sequence order) with a sequence above `cursor`. `oldest_retained` is
    /// the first sequence the log still holds (1 when nothing was compacted); a cursor before it
    /// cannot be served. `head` is the log's last sequence (the new cursor when nothing is newer).
    pub fn since<'e>(
        cursor: u64,
        oldest_retained: u64,
        head: u64,
        events: impl IntoIterator<Item = &'e ChangeEvent>,
    ) -> Result<Delta, DeltaError> {
        if cursor + 1 < oldest_retained {
            return Err(DeltaError::CursorExpired { cursor, oldest_retained });
        }
        let mut delta = Delta { from: cursor, to: cursor.max(head), tables: BTreeMap::new() };
        for event in events.into_iter().filter(|e| e.sequence > cursor) {
            delta.push(event);
        }
        Ok(delta)
    }

    /// Folds one event in (events must come in sequence order).
    pub fn push(&mut self, event: &ChangeEvent) {
        let change = &event.change;
        let table = self.tables.entry(change.table.clone()).or_default();
        match &change.row {
            Some(row) => {
                table.deleted.remove(&change.key);
                table.rows.insert(change.key.clone(), row.clone());
            }
            None => {
                table.rows.remove(&change.key);
                table.deleted.insert(change.key.clone());
            }
        }
        self.to = self.to.max(event.sequence);
    }

    /// Number of rows and tombstones carried.
    pub fn len(&self) -> usize {
        self.tables.values().map(|t| t.rows.len() + t.deleted.len()).sum()
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
