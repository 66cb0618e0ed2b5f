//! Reading the event log, and compacting it.

use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::db;
use mishkah_store::{parse_doc, Before, LoggedEvent, LoggedMutation, StorageError};

const EVENT_COLUMNS: &str = "seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, txn";
pub(super) const SELECT_EVENT_BY_MUTATION: &str =
    "SELECT seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, txn, mutation_digest FROM mishkah_events WHERE mutation_id = ?1";

/// Maps a `mishkah_events` row (in `EVENT_COLUMNS` order) to an event. The outer `Result` is
/// rusqlite's; the inner one reports a corrupt stored row.
pub(super) fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ChangeEvent, StorageError>> {
    let seq: i64 = r.get(0)?;
    let action: String = r.get(4)?;
    let row: Option<String> = r.get(7)?;
    let kind = match mishkah_store::action_kind(&action) {
        Ok(kind) => kind,
        Err(e) => return Ok(Err(e)),
    };
    let row = match row.map(|d| parse_doc(&d)).transpose() {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(ChangeEvent {
        sequence: seq as u64,
        event_id: r.get(1)?,
        mutation_id: r
            .get::<_, Option<String>>(2)?
            .map(|stored| mishkah_store::mutation_key::shown(&stored).to_owned()),
        created_at: r.get(8)?,
        transaction_id: r.get(9)?,
        change: Change {
            table: r.get(3)?,
            key: RecordKey(r.get(5)?),
            kind,
            row,
            version: r.get(6)?,
            coerced: Vec::new(),
            unknown_fields: Vec::new(),
            tolerated: Vec::new(),
        },
    }))
}

const LOGGED_COLUMNS: &str =
    "seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, txn, prev_row, source, meta, actor, sent_table, mutation_digest";

/// Events with `seq > after` as logged, in order, at most `limit`.
pub(super) fn logged_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError> {
    let sql = format!("SELECT {LOGGED_COLUMNS} FROM mishkah_events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let mut rows = stmt.query(params![after as i64, limit as i64]).map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        let event = row_to_event(r).map_err(db)??;
        let before = match (event.change.kind, r.get::<_, Option<String>>(10).map_err(db)?) {
            (ChangeKind::Insert, _) => Before::Absent,
            (_, Some(doc)) => Before::Row(parse_doc(&doc)?),
            (_, None) => Before::NotKept,
        };
        let meta = match r.get::<_, Option<String>>(12).map_err(db)? {
            Some(m) => serde_json::from_str(&m).map_err(|e| StorageError::Corrupt(format!("stored meta: {e}")))?,
            None => Value::Null,
        };
        out.push(LoggedEvent {
            event,
            before,
            source: r.get(11).map_err(db)?,
            meta,
            actor: r.get(13).map_err(db)?,
            table_as_sent: r.get(14).map_err(db)?,
            mutation: r
                .get::<_, Option<String>>(2)
                .map_err(db)?
                .map(|stored| Ok::<_, StorageError>(LoggedMutation { stored, digest: r.get(15).map_err(db)? }))
                .transpose()?,
        });
    }
    Ok(out)
}

/// Events with `seq > after`, in order, at most `limit`.
pub(super) fn events_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM mishkah_events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let rows = stmt.query_map(params![after as i64, limit as i64], row_to_event).map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(db)??);
    }
    Ok(out)
}

/// The first retained sequence (everything before was compacted) and the last one.
pub(super) fn bounds(conn: &Connection) -> Result<(u64, u64), StorageError> {
    // Never compacted: no row. Any other failure is an error, not "never compacted": a delta
    // computed from a wrong bound would silently skip the compacted events.
    let stored: Option<String> = conn
        .query_row("SELECT value FROM mishkah_meta WHERE key = 'compacted_through'", [], |r| r.get(0))
        .optional()
        .map_err(db)?;
    let checkpoint: u64 = match stored {
        None => 0,
        Some(v) => {
            v.parse().map_err(|_| StorageError::Corrupt(format!("compacted_through is `{v}`, not a sequence")))?
        }
    };
    let max: Option<i64> = conn.query_row("SELECT MAX(seq) FROM mishkah_events", [], |r| r.get(0)).map_err(db)?;
    let head = (max.unwrap_or(0) as u64).max(checkpoint);
    Ok((checkpoint + 1, head))
}

/// Deletes events up to `through` (the checkpoint); later cursors before it must resync in full.
/// Mutation ids of compacted events are forgotten too, so compaction also bounds dedup memory.
pub(super) fn compact(conn: &Connection, through: u64) -> Result<usize, StorageError> {
    let tx = conn.unchecked_transaction().map_err(db)?;
    let (_, head) = bounds(&tx)?;
    let through = through.min(head);
    let deleted = tx.execute("DELETE FROM mishkah_events WHERE seq <= ?1", params![through as i64]).map_err(db)?;
    tx.execute(
        "INSERT INTO mishkah_meta (key, value) VALUES ('compacted_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        params![through.to_string()],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_bounds_read_the_compaction_mark_and_refuse_a_corrupt_one() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::ddl::create_internal(&conn).unwrap();
        assert_eq!(bounds(&conn).unwrap(), (1, 0), "never compacted");
        conn.execute("INSERT INTO mishkah_meta (key, value) VALUES ('compacted_through', '7')", []).unwrap();
        assert_eq!(bounds(&conn).unwrap(), (8, 7));
        conn.execute("UPDATE mishkah_meta SET value = 'seven' WHERE key = 'compacted_through'", []).unwrap();
        assert!(bounds(&conn).is_err(), "a corrupt mark must not read as never compacted");
        conn.execute("DROP TABLE mishkah_meta", []).unwrap();
        assert!(bounds(&conn).is_err(), "nor must a missing table");
    }
}
