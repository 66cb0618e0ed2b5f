//! The documents every node reads alike (`mishkah.documents`): the API keys of a deployment
//! whose nodes each have a data directory of their own.

use std::sync::Arc;

use mishkah_store::{SharedDocs, StorageError};
use postgres::error::SqlState;

use crate::db;
use crate::pool::Pool;

pub(crate) struct PgDocs {
    pub(crate) pool: Arc<Pool<postgres::Client>>,
}

impl std::fmt::Debug for PgDocs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mishkah.documents")
    }
}

/// A database no node has written a document to has no table for them: nothing is written.
fn absent_if_no_table<T>(out: Result<Option<T>, postgres::Error>) -> Result<Option<T>, StorageError> {
    match out {
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) => {
            Ok(None)
        }
        other => other.map_err(db),
    }
}

impl SharedDocs for PgDocs {
    fn get(&self, name: &str) -> Result<Option<(u64, String)>, StorageError> {
        self.pool.with(|client| {
            let found = client.query_opt("SELECT version, body FROM mishkah.documents WHERE name = $1", &[&name]);
            absent_if_no_table(found.map(|row| row.map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))))
        })
    }

    fn version(&self, name: &str) -> Result<Option<u64>, StorageError> {
        self.pool.with(|client| {
            let found = client.query_opt("SELECT version FROM mishkah.documents WHERE name = $1", &[&name]);
            absent_if_no_table(found.map(|row| row.map(|r| r.get::<_, i64>(0) as u64)))
        })
    }

    fn put(&self, name: &str, text: &str, expected: Option<u64>) -> Result<bool, StorageError> {
        self.pool.with(|client| {
            let mut tx = client.transaction().map_err(db)?;
            // The same lock as a module's DDL: nodes creating the schema at once take turns.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext('mishkah.ddl'))", &[]).map_err(db)?;
            tx.batch_execute(
                "CREATE SCHEMA IF NOT EXISTS mishkah;
                 CREATE TABLE IF NOT EXISTS mishkah.documents (
                     name TEXT PRIMARY KEY, body TEXT NOT NULL, version BIGINT NOT NULL);",
            )
            .map_err(db)?;
            let written = match expected {
                None => tx.execute(
                    "INSERT INTO mishkah.documents (name, body, version) VALUES ($1, $2, 1) ON CONFLICT DO NOTHING",
                    &[&name, &text],
                ),
                Some(version) => tx.execute(
                    "UPDATE mishkah.documents SET body = $2, version = version + 1 WHERE name = $1 AND version = $3",
                    &[&name, &text, &(version as i64)],
                ),
            }
            .map_err(db)?;
            tx.commit().map_err(db)?;
            Ok(written == 1)
        })
    }

    fn remote(&self) -> bool {
        true
    }
}
