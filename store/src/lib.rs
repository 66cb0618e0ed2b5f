//! The storage seam. The engine sees storage only through these traits and types; a backend crate
//! implements them (`mishkah-store-sqlite`, embedded, one database per branch+module; a
//! PostgreSQL backend for several nodes), and no driver type crosses this line.
//!
//! - [`Backend`] opens modules: it says whether one was initialized, and opens (creating and
//!   additively migrating) its store.
//! - Opening gives a [`ModuleWriter`] — the only writer of the module; the engine's writer thread
//!   holds it — and [`ModuleReads`], consistent read snapshots for any number of readers.
//! - [`ModuleWriter::begin`] starts a [`Transaction`]: [`WriteTxn`] (what one write needs) plus
//!   commit. A refused write fails alone and never its batch; a storage fault ends the
//!   transaction, and nothing of it is kept.
//! - Every event is logged with what a reader that did not commit it needs ([`LoggedEvent`]).

mod aggregate;
mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod event;
mod event_row;
pub mod layout;
pub mod mutation_key;
mod read;
pub mod schema_change;
mod shared;
mod write;

pub use aggregate::{Group, Measure};
pub use backend::{Backend, Commit, CommitListener, Durability, ModuleAt, OpenOptions, OpenReport, Opened};
pub use error::StorageError;
pub use event::{Before, LoggedEvent, LoggedMutation, MutationStamp, NewEvent, Replay};
pub use event_row::{action_kind, action_name, held_texts, EventRow};
pub use read::{consistent, ModuleRead, ModuleReads, PageQuery, StoredPage};
pub use shared::{DirDocs, SharedDocs};
pub use write::{ModuleWriter, Prefetch, Transaction, WriteTxn};

/// Parses a stored document (the whole record as JSON, every backend keeps one per row).
pub fn parse_doc(doc: &str) -> Result<mishkah_core::Row, StorageError> {
    serde_json::from_str(doc).map_err(|e| StorageError::Corrupt(format!("stored record is not a JSON object: {e}")))
}
