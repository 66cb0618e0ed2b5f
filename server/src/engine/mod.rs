//! The engine: every mutation — from REST, WebSocket, seeding, restore, reset — goes through
//! [`ModuleHandle::write`] (or a batch of it), which hands it to the module's single writer thread.
//! The writer validates and versions it with `mishkah-core`, stores row and event in one
//! transaction, commits, and only then acknowledges it and publishes it to the [`crate::hub::Hub`].
//!
//! Group commit: the writer drains every queued job into one transaction, one savepoint per
//! mutation so a bad mutation fails alone. Jobs are handled in queue order, so the order of one
//! connection's writes is preserved.

mod backfill;
mod follower;
mod handle;
mod open_db;
mod open_modules;
pub mod plan;
pub(crate) mod purge;
mod registry;
pub mod seed;
mod sender;
mod write_one;
mod writer;

use std::sync::Arc;

use mishkah_core::mutation::MutationError;
use mishkah_core::sync::ChangeEvent;
use serde_json::{json, Map, Value};

pub use handle::ModuleHandle;
pub use registry::{Engine, EngineConfig, EngineError, Opening};
pub use sender::Sender;
pub use write_one::key_values as key_record;
pub use writer::{Job, Precondition, Reply, WriteJob};

use crate::storage::StorageError;

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The core refused it (conflict, validation, not found...).
    #[error(transparent)]
    Mutation(#[from] MutationError),
    /// Storage failed; nothing of the write was kept.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An atomic batch failed because of another of its writes.
    #[error("batch aborted: write #{index} failed: {message}")]
    BatchAborted {
        /// The failing write's index.
        index: usize,
        /// Its error's code.
        code: &'static str,
        /// Its error.
        message: String,
        /// Its error's details.
        details: Value,
    },
    /// The commit failed (disk full, read-only file...): nothing of the write was stored.
    #[error("commit failed, nothing was stored: {0}")]
    CommitFailed(String),
    /// The module's writer has stopped (shutdown, or a fatal storage error).
    #[error("the module is not accepting writes")]
    Unavailable,
    /// The security rules refuse it (`forbidden`, `read-only-field`).
    #[error(transparent)]
    Denied(#[from] mishkah_core::rules::Denied),
    /// What a batch assumed of the stored state did not hold (`last-ack-mismatch`): its code,
    /// why, and details.
    #[error("{message}")]
    Precondition { code: &'static str, message: String, details: Value },
    /// The sender already used this mutation id for another write.
    #[error("mutation id `{0}` was already used for another write")]
    MutationIdReused(String),
    /// A plan refused to write (an empty order, a duplicate save...): its code and why.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

impl WriteError {
    /// The batch failed because write `index` did with `cause`.
    pub fn aborted_by(index: usize, cause: WriteError) -> WriteError {
        WriteError::BatchAborted { index, code: cause.code(), message: cause.to_string(), details: cause.details() }
    }

    /// What the error is about, for a client to act on (`null` when nothing more than its code
    /// and message): the conflict, the validation errors, the rule, the read that failed...
    pub fn details(&self) -> Value {
        use mishkah_core::rules::Denied;
        match self {
            WriteError::Mutation(m) => match m {
                MutationError::Conflict(c) => serde_json::to_value(c).unwrap_or(Value::Null),
                MutationError::Validation(v) => json!({"table": v.table, "errors": v.errors}),
                MutationError::NotFound { table, key } | MutationError::DuplicateKey { table, key } => {
                    json!({"table": table, "key": key})
                }
                MutationError::UnknownTable(t) => json!({"table": t}),
                MutationError::MissingKey(k) => json!({"table": k.table, "field": k.field}),
            },
            WriteError::Denied(Denied::Forbidden { table, action }) => json!({"table": table, "action": action}),
            WriteError::Denied(Denied::ReadOnlyField { table, field }) => json!({"table": table, "field": field}),
            WriteError::Storage(StorageError::TooLarge { table, bytes, max }) => {
                json!({"table": table, "bytes": bytes, "max": max})
            }
            WriteError::Storage(StorageError::Unique { table, .. }) => json!({"table": table}),
            WriteError::BatchAborted { index, code, details, .. } => {
                json!({"index": index, "code": code, "details": details})
            }
            WriteError::Precondition { details, .. } => details.clone(),
            WriteError::MutationIdReused(id) => json!({"mutationId": id}),
            WriteError::Storage(_)
            | WriteError::CommitFailed(_)
            | WriteError::Unavailable
            | WriteError::Refused { .. } => Value::Null,
        }
    }

    /// Stable code: the core's, the storage's, or `batch-aborted` / `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            WriteError::Mutation(e) => e.code(),
            WriteError::Storage(e) => e.code(),
            WriteError::BatchAborted { .. } => "batch-aborted",
            WriteError::CommitFailed(_) => "storage-error",
            WriteError::Unavailable => "unavailable",
            WriteError::Denied(e) => e.code(),
            WriteError::Refused { code, .. } => code,
            WriteError::MutationIdReused(_) => "mutation-id-reused",
            WriteError::Precondition { code, .. } => code,
        }
    }
}

/// A committed write, as acknowledged and published.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The logged event (shared with the publisher).
    pub event: Arc<ChangeEvent>,
    /// The key fields and their values (`{id: ...}`).
    pub primary_key: Map<String, Value>,
    /// This mutation id had already been committed; nothing was changed now.
    pub replayed: bool,
    /// The row before the write (none for an insert or a replay): fan-out needs it to tell a
    /// subscriber whose rules admitted the row before, and not after, that it left.
    pub previous: Option<Arc<mishkah_core::Row>>,
    /// The table's name as the writer gave it, when it is not the module's (`pos_shifts`): the
    /// original's frames carry that name.
    pub table_as_sent: Option<Arc<str>>,
}

/// The outcome of one write.
pub type WriteOutcome = Result<Committed, WriteError>;
