//! The storage conformance suite on PostgreSQL (a database of its own per test, see
//! `mishkah_test_support::postgres`).

use mishkah_store::{Backend, ModuleAt, OpenOptions, Opened, StorageError};
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::TestDatabase;

/// The backend on a fresh database, which is dropped with it.
#[derive(Debug)]
struct Fresh {
    backend: PostgresBackend,
    _database: DatabaseGuard,
}

struct DatabaseGuard(TestDatabase);

impl std::fmt::Debug for DatabaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.url)
    }
}

fn fresh() -> Fresh {
    let database = TestDatabase::new();
    Fresh { backend: PostgresBackend::new(&database.url).expect("a valid url"), _database: DatabaseGuard(database) }
}

impl Backend for Fresh {
    fn initialized(&self, at: &ModuleAt<'_>) -> Result<bool, StorageError> {
        self.backend.initialized(at)
    }
    fn open(
        &self,
        at: &ModuleAt<'_>,
        tables: &[&mishkah_core::Table],
        options: &OpenOptions,
    ) -> Result<Opened, StorageError> {
        self.backend.open(at, tables, options)
    }
    fn inspect(
        &self,
        at: &ModuleAt<'_>,
        tables: &[&mishkah_core::Table],
    ) -> Result<Option<Vec<mishkah_store::schema_change::TableImpact>>, StorageError> {
        self.backend.inspect(at, tables)
    }
}

mishkah_store::conformance_suite!(fresh());
