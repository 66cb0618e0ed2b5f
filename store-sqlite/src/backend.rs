//! The embedded backend: a module's store is the file `live/mishkah.sqlite3` in its directory.

use std::path::PathBuf;

use mishkah_core::schema::Table;
use mishkah_store::schema_change::TableImpact;
use mishkah_store::{Backend, ModuleAt, OpenOptions, Opened, StorageError};

use super::module_db::ModuleDb;
use super::readers::Readers;

/// One SQLite database per branch+module, in the data directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteBackend;

impl SqliteBackend {
    /// The database file of the module at `at`.
    pub fn path(at: &ModuleAt<'_>) -> PathBuf {
        at.dir.join("live").join("mishkah.sqlite3")
    }
}

impl Backend for SqliteBackend {
    fn initialized(&self, at: &ModuleAt<'_>) -> Result<bool, StorageError> {
        ModuleDb::initialized(&Self::path(at))
    }

    fn inspect(&self, at: &ModuleAt<'_>, tables: &[&Table]) -> Result<Option<Vec<TableImpact>>, StorageError> {
        if !ModuleDb::initialized(&Self::path(at))? {
            return Ok(None);
        }
        let conn = ModuleDb::open_read_only(&Self::path(at))?;
        crate::ddl::inspect(&conn, tables).map(Some)
    }

    /// `VACUUM INTO`: one read transaction copied page by page into a new, compact file.
    fn backup(&self, at: &ModuleAt<'_>, into: &std::path::Path) -> Result<u64, StorageError> {
        crate::backup::copy(&Self::path(at), &Self::path(&ModuleAt { dir: into, ..*at }))
    }

    fn open(&self, at: &ModuleAt<'_>, tables: &[&Table], options: &OpenOptions) -> Result<Opened, StorageError> {
        let path = Self::path(at);
        let (mut db, report) = ModuleDb::open(&path, tables, options.durability)?;
        if let Some(pages) = options.max_pages {
            let cap = db.limit_pages(pages)?;
            tracing::info!(branch = %at.branch, module = %at.module, pages = cap, "database size capped");
        }
        db.limit_record_bytes(options.max_record_bytes);
        db.start_checkpointer((at.branch, at.module), options.maintenance_interval);
        let reads = Readers::open(&path)?;
        Ok(Opened { writer: Box::new(db), reads: Box::new(reads), report })
    }
}
