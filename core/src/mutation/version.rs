//! Version claims and which tables require them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Conflict, ConflictReason};
use crate::record::RecordKey;

/// What a write says about the version it was based on. A request is read one way only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionClaim {
    /// No version given.
    None,
    /// The legacy `version` field of the record: the version the write will **produce**. Accepted
    /// when it is `current + 1`, or `1` while the row is at 1 (the original's special case).
    Legacy(i64),
    /// `expectedVersion`: the version the client last saw. Accepted when it equals the current one.
    Expected(i64),
}

/// Which tables refuse updates without a version. Elsewhere a versionless update is last-writer-wins,
/// as old clients expect; an explicit `expectedVersion` is honoured on every table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPolicy {
    /// Tables that require a version on update (default: `order_header`, `order_line`).
    pub required_tables: BTreeSet<String>,
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy { required_tables: ["order_header", "order_line"].into_iter().map(String::from).collect() }
    }
}

impl VersionPolicy {
    /// Whether `table` requires a version on update.
    pub fn requires_version(&self, table: &str) -> bool {
        self.required_tables.contains(table)
    }

    /// Checks a claim against the current version of an existing row.
    pub(crate) fn check(
        &self,
        table: &str,
        key: &RecordKey,
        claim: VersionClaim,
        current: i64,
    ) -> Result<(), Conflict> {
        let conflict = |expected: Option<i64>, reason| Conflict {
            table: table.to_owned(),
            key: key.clone(),
            expected_version: expected,
            current_version: current,
            reason,
        };
        match claim {
            VersionClaim::Expected(seen) if seen == current => Ok(()),
            VersionClaim::Expected(seen) => Err(conflict(Some(seen), ConflictReason::StaleVersion)),
            // Old clients send `version` on every table; only the versioned tables ever enforced it.
            VersionClaim::Legacy(_) if !self.requires_version(table) => Ok(()),
            VersionClaim::Legacy(next) if next == current + 1 || (next == 1 && current == 1) => Ok(()),
            VersionClaim::Legacy(next) => Err(conflict(Some(next - 1), ConflictReason::StaleVersion)),
            VersionClaim::None if self.requires_version(table) => Err(conflict(None, ConflictReason::MissingVersion)),
            VersionClaim::None => Ok(()),
        }
    }
}
