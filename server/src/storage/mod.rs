//! Storage: one SQLite database per branch+module holding the rows (real typed tables generated from
//! the schema), the event log, sequence counters and history archives.
//!
//! The engine sees storage through two narrow surfaces: [`ModuleDb`] (open, read, run a write
//! transaction) and [`WriteTxn`] (what one write needs inside a transaction). A PostgreSQL backend
//! for multi-node deployments implements the same two; nothing above this module knows SQL.
//!
//! Each table stores the whole record as JSON (`mishkah_doc`, the source of truth for its shape,
//! unknown properties included) plus one typed column per schema field for indexes, unique
//! constraints and queries.

mod aggregate;
mod ddl;
mod events;
pub mod filter_sql;
mod module_db;
mod mutation_key;
mod search;
mod txn;

pub use aggregate::{Group, Measure};
pub use events::{Before, LoggedEvent};
pub use module_db::{
    checkpoint, Durability, ModuleDb, ModuleReader, OpenReport, PageQuery, StoredPage, Transaction, WalProgress,
};
pub use txn::{MutationStamp, NewEvent, Replay, WriteTxn};

/// Parses a stored `mishkah_doc` (shared by the write transaction, the readers and the event
/// log, which otherwise do not know each other).
fn parse_doc(doc: &str) -> Result<mishkah_core::Row, StorageError> {
    serde_json::from_str(doc).map_err(|e| StorageError::Corrupt(format!("stored record is not a JSON object: {e}")))
}

/// A storage failure. Never swallowed: the write is refused, or the server refuses to start.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite said no (disk full, read-only file, corruption...).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value is not what we wrote.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The schema changed in a way that would lose data.
    #[error("refusing destructive schema change on `{table}`: {message}")]
    Destructive {
        table: String,
        /// What changed.
        message: String,
    },
    /// A unique constraint was violated.
    #[error("unique constraint violated on `{table}`: {message}")]
    Unique {
        table: String,
        /// SQLite's message.
        message: String,
    },
    /// A record longer than the server stores (`--max-record-bytes`); nothing was written.
    #[error("a `{table}` record of {bytes} bytes is larger than the {max} bytes a record may have")]
    TooLarge { table: String, bytes: usize, max: usize },
    /// Files could not be created.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StorageError {
    /// `storage-error`, `unique-violation`, `destructive-migration`.
    pub fn code(&self) -> &'static str {
        match self {
            StorageError::Unique { .. } => "unique-violation",
            StorageError::Destructive { .. } => "destructive-migration",
            StorageError::TooLarge { .. } => "record-too-large",
            _ => "storage-error",
        }
    }
}
