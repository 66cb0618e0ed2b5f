//! An online copy of a module's database (`mishkah backup`), taken while its writer goes on.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::db;
use mishkah_store::StorageError;

/// Copies the database at `from` into the new file `to` with `VACUUM INTO` (one read
/// transaction: every table and the log as of one commit; the writer is not held up) and returns
/// the head the copy holds.
pub(crate) fn copy(from: &Path, to: &Path) -> Result<u64, StorageError> {
    if to.exists() {
        return Err(StorageError::Corrupt(format!("{} exists already: a backup never overwrites", to.display())));
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let source = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
    source.busy_timeout(std::time::Duration::from_secs(30)).map_err(db)?;
    let target = to.to_str().ok_or_else(|| StorageError::Unsupported(format!("the path {}", to.display())))?;
    source.execute("VACUUM INTO ?1", [target]).map_err(db)?;
    let copy = Connection::open_with_flags(to, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
    Ok(crate::events::bounds(&copy)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_holds_the_source_as_of_one_commit_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a.sqlite3"), dir.path().join("copy/b.sqlite3"));
        let conn = Connection::open(&from).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        crate::ddl::create_internal(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO mishkah_events (seq, event_id, tbl, action, record_key, version, created_at, source)
             VALUES (1, 'e1', 't', 'insert', 'k', 1, 'now', 'ws'), (2, 'e2', 't', 'update', 'k', 2, 'now', 'ws');",
        )
        .unwrap();
        assert_eq!(copy(&from, &to).unwrap(), 2);
        conn.execute_batch(
            "INSERT INTO mishkah_events (seq, event_id, tbl, action, record_key, version, created_at, source)
             VALUES (3, 'e3', 't', 'delete', 'k', 3, 'now', 'ws');",
        )
        .unwrap();
        let copied = Connection::open(&to).unwrap();
        let n: i64 = copied.query_row("SELECT COUNT(*) FROM mishkah_events", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2, "what was committed when the copy began");
        assert!(copy(&from, &to).is_err(), "never overwrites");
    }
}
