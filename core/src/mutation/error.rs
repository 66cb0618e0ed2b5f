//! Why a mutation was not applied.

use serde::{Deserialize, Serialize};

use crate::record::{KeyError, RecordKey, ValidationErrors};

/// Why a mutation was refused. [`MutationError::code`] is stable and machine-readable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MutationError {
    /// The table is not in the module's schema.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// The record lacks its primary key.
    #[error(transparent)]
    MissingKey(#[from] KeyError),
    /// The record breaks the schema.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// Update, merge or delete of a row that does not exist.
    #[error("Record not found: `{table}` `{key}`")]
    NotFound {
        table: String,
        /// The key looked for.
        key: RecordKey,
    },
    /// Insert of a key that exists.
    #[error("`{table}` already has a row `{key}`")]
    DuplicateKey {
        table: String,
        /// The existing key.
        key: RecordKey,
    },
    /// The caller's version is stale or missing.
    #[error(transparent)]
    Conflict(#[from] Conflict),
}

impl MutationError {
    /// `table-not-found`, `missing-record-key`, `validation-failed`, `not-found`, `duplicate-key`,
    /// `version-conflict`.
    pub fn code(&self) -> &'static str {
        match self {
            MutationError::UnknownTable(_) => "table-not-found",
            MutationError::MissingKey(_) => "missing-record-key",
            MutationError::Validation(_) => "validation-failed",
            MutationError::NotFound { .. } => "not-found",
            MutationError::DuplicateKey { .. } => "duplicate-key",
            MutationError::Conflict(_) => "version-conflict",
        }
    }
}

/// A version conflict, with what the client claimed and what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{}", conflict_message(self))]
pub struct Conflict {
    pub table: String,
    /// The row's key.
    pub key: RecordKey,
    /// The version the client based its write on (`None` when it gave none).
    pub expected_version: Option<i64>,
    /// The stored version.
    pub current_version: i64,
    /// Why.
    pub reason: ConflictReason,
}

/// What a person reads: what happened and what to do, not the fields of a Rust value.
fn conflict_message(c: &Conflict) -> String {
    let Conflict { table, key, expected_version, current_version, reason } = c;
    match (reason, expected_version) {
        (ConflictReason::MissingVersion, _) => format!(
            "`{table}` `{key}` is versioned: send the version you read (it is now {current_version})"
        ),
        (ConflictReason::StaleVersion, Some(seen)) => format!(
            "`{table}` `{key}` changed since you read it (you read version {seen}, it is now {current_version}): read it again and retry"
        ),
        (ConflictReason::StaleVersion, None) => {
            format!("`{table}` `{key}` changed since you read it (it is now version {current_version}): read it again and retry")
        }
    }
}

/// Why a version was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictReason {
    /// The row changed since the client read it.
    StaleVersion,
    /// A versioned table was updated without a version.
    MissingVersion,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_reads_as_what_happened_and_what_to_do() {
        let c = Conflict {
            table: "order_line".into(),
            key: RecordKey("L-1".into()),
            expected_version: Some(1),
            current_version: 2,
            reason: ConflictReason::StaleVersion,
        };
        let text = c.to_string();
        assert!(
            text.contains("changed since you read it") && text.contains("version 1") && text.contains("now 2"),
            "{text}"
        );
        assert!(!text.contains("Some(") && !text.contains("StaleVersion"), "{text}");
        let missing = Conflict { expected_version: None, reason: ConflictReason::MissingVersion, ..c };
        assert!(missing.to_string().contains("send the version you read"), "{missing}");
    }
}
