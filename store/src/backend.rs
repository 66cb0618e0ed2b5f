//! A storage backend: what opens a module's store.

use std::path::Path;

use mishkah_core::schema::Table;

use crate::schema_change::TableImpact;
use crate::{ModuleReads, ModuleWriter, StorageError};

/// Where a module lives: its branch and name, and its directory in the data directory (where an
/// embedded backend keeps its files; a server backend ignores it).
#[derive(Debug, Clone, Copy)]
pub struct ModuleAt<'a> {
    pub branch: &'a str,
    pub module: &'a str,
    pub dir: &'a Path,
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// An acknowledged write survives power loss.
    #[default]
    Full,
    /// An acknowledged write survives a process crash; the last commits may be lost on power loss.
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!("`{other}` is not a durability: `full` or `normal`")),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        })
    }
}

/// Limits and tuning a module's store opens with.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub durability: Durability,
    /// Cap on the store's size, in pages of the database (an operational limit; writes that need
    /// more are refused as on a full disk).
    pub max_pages: Option<u64>,
    /// Longest JSON a stored record may have (`record-too-large`).
    pub max_record_bytes: usize,
    /// How often background maintenance (SQLite's checkpoints) looks for new commits.
    pub maintenance_interval: std::time::Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Full,
            max_pages: None,
            max_record_bytes: usize::MAX,
            maintenance_interval: std::time::Duration::from_millis(500),
        }
    }
}

/// What opening a module's store did.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// The store was created now (seed it, import counters).
    pub created: bool,
    /// Additive migrations applied.
    pub migrations: Vec<String>,
    /// Ad-hoc tables (not in the schema) found in the store.
    pub adhoc_tables: Vec<String>,
}

/// An open module: its one writer and its readers.
pub struct Opened {
    pub writer: Box<dyn ModuleWriter>,
    pub reads: Box<dyn ModuleReads>,
    pub report: OpenReport,
}

/// A commit another process made: the module and its new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub branch: String,
    pub module: String,
    pub head: u64,
}

/// Told of commits other processes made: `Some` for one commit, `None` when some may have been
/// missed (a reconnect), so every open module should look at its log.
pub type CommitListener = std::sync::Arc<dyn Fn(Option<Commit>) + Send + Sync>;

/// Opens modules' stores.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Whether the module's store exists and was initialized (seeded) on an earlier start: then it
    /// starts from itself alone, and no seed file is read.
    fn initialized(&self, at: &ModuleAt<'_>) -> Result<bool, StorageError>;
    /// Opens (creating when absent) the module's store and migrates it additively for `tables`.
    fn open(&self, at: &ModuleAt<'_>, tables: &[&Table], options: &OpenOptions) -> Result<Opened, StorageError>;
    /// What `tables` would do to the module's stored rows, table by table where it changes
    /// something ([`crate::schema_change`]), read without changing the store; `None` for a module
    /// never stored. Blocks.
    fn inspect(&self, at: &ModuleAt<'_>, tables: &[&Table]) -> Result<Option<Vec<TableImpact>>, StorageError>;
    /// Starts telling `listener` of commits other processes make, for as long as the process
    /// runs; `false` when no other process writes this backend's modules (one embedded writer).
    /// A notification only wakes a reader up: what happened is read from the log by cursor.
    fn follow(&self, listener: CommitListener) -> Result<bool, StorageError> {
        let _ = listener;
        Ok(false)
    }
    /// Whether some process created a module of `branch` in this store (several nodes share one
    /// store, but each has its own data directory). Blocks.
    fn has_branch(&self, branch: &str) -> Result<bool, StorageError> {
        let _ = branch;
        Ok(false)
    }
    /// Every branch some process created a module of in this store, when the store is shared by
    /// several nodes (`None`: only this process creates branches in it, and its data directory
    /// says which). Blocks.
    fn branches(&self) -> Result<Option<Vec<String>>, StorageError> {
        Ok(None)
    }
    /// Writes a consistent copy of the module's store as of one commit where this backend would
    /// keep the store of a module in the directory `into` (an embedded store's own files), while
    /// its writers go on; returns the head the copy holds. Blocks.
    fn backup(&self, at: &ModuleAt<'_>, into: &std::path::Path) -> Result<u64, StorageError> {
        let _ = (at, into);
        Err(StorageError::Unsupported("an online backup of this store (use its own tools)".into()))
    }
    /// Whether the store answers now (a server backend's database is reachable). Blocks.
    fn ping(&self) -> Result<(), StorageError> {
        Ok(())
    }
    /// Where the documents every node must read alike are kept (the API keys): the data
    /// directory `data` for an embedded store, the database for a shared one.
    fn shared_docs(&self, data: &std::path::Path) -> std::sync::Arc<dyn crate::SharedDocs> {
        std::sync::Arc::new(crate::DirDocs::new(data))
    }
}
