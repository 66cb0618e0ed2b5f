//! The embedded backend: one SQLite database (WAL) per branch+module, in the module's directory
//! of the data directory, holding the rows (real typed tables generated from the schema, beside
//! the whole record as JSON), the event log, sequence counters and history archives. It implements
//! the seam of `mishkah-store`; nothing outside this crate sees SQLite.
//!
//! Its writer owns a checkpointer thread (`checkpointer.rs`); its reads run on a pool of read
//! connections, one per core (`readers.rs`), which never block the writer or each other.

mod aggregate;
mod backend;
mod backup;
mod checkpointer;
mod ddl;
mod events;
pub mod filter_sql;
mod module_db;
mod readers;
mod search;
#[cfg(feature = "tampering")]
pub mod tampering;
mod txn;

pub use backend::SqliteBackend;
pub use module_db::{ModuleDb, ModuleReader};

use mishkah_store::StorageError;

/// A SQLite error, as the seam reports it (a constraint is told apart where it is expected).
pub(crate) fn db(e: rusqlite::Error) -> StorageError {
    StorageError::Database(e.to_string())
}
