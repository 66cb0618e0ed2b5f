//! Storage as the server sees it: the seam's traits and types (`mishkah-store`), and the backends
//! a deployment can choose. Nothing else in the server names a backend.

use std::sync::Arc;

pub use mishkah_store::*;
pub use mishkah_store_postgres::PostgresBackend;
pub use mishkah_store_sqlite::SqliteBackend;

/// The backend `--store` names: none, SQLite in the data directory; a `postgres://` URL,
/// PostgreSQL (checked to answer now, so a wrong URL stops the start with the reason).
pub fn backend(store: Option<&str>) -> Result<Arc<dyn Backend>, StorageError> {
    match store {
        None | Some("") | Some("sqlite") => Ok(Arc::new(SqliteBackend)),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let backend = PostgresBackend::new(url)?;
            Backend::ping(&backend)?;
            Ok(Arc::new(backend))
        }
        Some(other) => Err(StorageError::Unsupported(format!("the store `{other}` (expected a postgres:// URL)"))),
    }
}
