//! Where a client is in a module's log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A client's position: the last module sequence it applied, plus the original's per-table cursors
/// (`updatedAt` / `lastId`) kept for compatibility with its delta route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// Last applied module sequence (0: nothing yet).
    pub sequence: u64,
    /// Per-table cursors in the original's form.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableCursor>,
}

/// The original's per-table cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableCursor {
    /// The last row id the client saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    /// The newest `updatedAt` the client saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl Cursor {
    /// A cursor at `sequence`.
    pub fn at(sequence: u64) -> Cursor {
        Cursor { sequence, tables: BTreeMap::new() }
    }
}
