//! Storage as the server sees it: the seam's traits and types (`mishkah-store`), and the backends
//! a deployment can choose. Nothing else in the server names a backend.

pub use mishkah_store::*;
pub use mishkah_store_sqlite::SqliteBackend;
