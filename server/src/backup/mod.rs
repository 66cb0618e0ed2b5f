//! Backups and point-in-time restore.
//!
//! A target (a directory or an S3-compatible bucket, [`target`]) holds:
//! - `snapshots/<UTC time>/`: `data/` (the data directory's configuration and each module's
//!   store as of one commit) and `manifest.json` (each module's head, each file's SHA-256),
//!   written last: a snapshot without one is unfinished ([`snapshot`]);
//! - `log/<branch>/<module>/`: the modules' logs, shipped as they commit ([`segment`],
//!   [`shipping`]).
//!
//! A restore ([`mod@restore`]) takes the nearest snapshot before the point asked for and replays the
//! shipped log up to exactly that sequence or time.

pub mod progress;
pub mod restore;
pub mod segment;
pub mod shipping;
pub mod snapshot;
pub mod target;

pub use progress::{Progress, Unit};
pub use restore::{restore, Restored, Until};
pub use snapshot::{BackedFile, BackedModule, Manifest};
pub use target::Target;

use std::path::PathBuf;

use crate::storage::StorageError;

/// Why a backup or a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    #[error(transparent)]
    Data(#[from] crate::datadir::DataDirError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the backup target {0}: {1}")]
    Target(String, String),
    #[error("{0} holds no snapshot{1}")]
    NoSnapshot(String, String),
    #[error("{0}: its checksum does not match the manifest's — the backup is damaged")]
    Damaged(String),
    #[error("{0} exists and is not empty: a restore makes a new data directory")]
    TargetNotEmpty(PathBuf),
    #[error("{branch}/{module}: the shipped log has no sequence {missing} (the backup holds up to {held})")]
    Gap { branch: String, module: String, missing: u64, held: u64 },
    #[error("{0}")]
    Request(String),
}

/// Runs an async step of a backup from blocking code (the command line, a blocking task).
pub(crate) fn block_on<F: std::future::Future>(runtime: &tokio::runtime::Handle, f: F) -> F::Output {
    runtime.block_on(f)
}
