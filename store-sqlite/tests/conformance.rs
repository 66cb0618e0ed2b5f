//! The storage conformance suite on SQLite.

mishkah_store::conformance_suite!(mishkah_store_sqlite::SqliteBackend);
