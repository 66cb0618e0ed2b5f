//! A committed change with its place in the module's log.

use serde::{Deserialize, Serialize};

use crate::mutation::Change;

/// A change as committed: its module sequence number, ids and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEvent {
    /// Gap-free, 1-based sequence number within the branch+module.
    pub sequence: u64,
    /// The event id (`evt-...`).
    pub event_id: String,
    /// The mutation that produced it, for exactly-once replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutation_id: Option<String>,
    /// Commit time, ISO-8601.
    pub created_at: String,
    /// The transaction it was committed in, when it was one of several changes committed together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// What changed.
    pub change: Change,
}
