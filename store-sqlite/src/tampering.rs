//! For tests of what catches a change made behind the write path (`mishkah verify`): a stored
//! document edited in the database file directly, as a stray hand or a bad disk would.

use std::path::Path;

use rusqlite::Connection;

use crate::db;
use mishkah_store::StorageError;

/// Replaces `from` with `to` in the stored document of `table`'s row `key`, in the module
/// database at `file`, bypassing the log; how many rows changed.
pub fn rewrite_document(file: &Path, table: &str, key: &str, from: &str, to: &str) -> Result<usize, StorageError> {
    let conn = Connection::open(file).map_err(db)?;
    let sql_name: String =
        conn.query_row("SELECT sql_name FROM mishkah_tables WHERE name = ?1", [table], |r| r.get(0)).map_err(db)?;
    let sql = format!("UPDATE \"{sql_name}\" SET mishkah_doc = replace(mishkah_doc, ?1, ?2) WHERE mishkah_key = ?3");
    conn.execute(&sql, [from, to, key]).map_err(db)
}
