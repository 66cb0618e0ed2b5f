//! Reading the event log, and compacting it.

use mishkah_core::sync::ChangeEvent;
use mishkah_core::{Change, ChangeKind, RecordKey, Row};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::{parse_doc, StorageError};

const EVENT_COLUMNS: &str = "seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at";
pub(super) const SELECT_EVENT_BY_MUTATION: &str =
    "SELECT seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, mutation_digest FROM mishkah_events WHERE mutation_id = ?1";

/// Maps a `mishkah_events` row (in `EVENT_COLUMNS` order) to an event. The outer `Result` is
/// rusqlite's; the inner one reports a corrupt stored row.
pub(super) fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ChangeEvent, StorageError>> {
    let seq: i64 = r.get(0)?;
    let action: String = r.get(4)?;
    let row: Option<String> = r.get(7)?;
    let kind = match action.as_str() {
        "insert" => ChangeKind::Insert,
        "update" => ChangeKind::Update,
        "delete" => ChangeKind::Delete,
        other => return Ok(Err(StorageError::Corrupt(format!("unknown event action `{other}`")))),
    };
    let row = match row.map(|d| parse_doc(&d)).transpose() {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(ChangeEvent {
        sequence: seq as u64,
        event_id: r.get(1)?,
        mutation_id: r.get::<_, Option<String>>(2)?.map(|stored| super::mutation_key::shown(&stored).to_owned()),
        created_at: r.get(8)?,
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

/// An event as the log keeps it: what a reader that did not commit it needs (another node, a
/// delta, a restore), without the writer's memory.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    pub event: ChangeEvent,
    pub before: Before,
    /// `ws`, `rest`, `seed`...
    pub source: String,
    /// The writer's meta (`null` when none).
    pub meta: Value,
    /// Who wrote it; none when anonymous.
    pub actor: Option<String>,
    /// The table's name as the writer gave it, when not the schema's.
    pub table_as_sent: Option<String>,
}

/// The row before a logged change.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    /// An insert: there was none.
    Absent,
    Row(Row),
    /// Logged before the log kept the row before a change: a reader must assume anyone may have
    /// seen it.
    NotKept,
}

const LOGGED_COLUMNS: &str =
    "seq, event_id, mutation_id, tbl, action, record_key, version, row, created_at, prev_row, source, meta, actor, sent_table";

/// Events with `seq > after` as logged, in order, at most `limit`.
pub(super) fn logged_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<LoggedEvent>, StorageError> {
    let sql = format!("SELECT {LOGGED_COLUMNS} FROM mishkah_events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![after as i64, limit as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let event = row_to_event(r)??;
        let before = match (event.change.kind, r.get::<_, Option<String>>(9)?) {
            (ChangeKind::Insert, _) => Before::Absent,
            (_, Some(doc)) => Before::Row(parse_doc(&doc)?),
            (_, None) => Before::NotKept,
        };
        let meta = match r.get::<_, Option<String>>(11)? {
            Some(m) => serde_json::from_str(&m).map_err(|e| StorageError::Corrupt(format!("stored meta: {e}")))?,
            None => Value::Null,
        };
        out.push(LoggedEvent { event, before, source: r.get(10)?, meta, actor: r.get(12)?, table_as_sent: r.get(13)? });
    }
    Ok(out)
}

/// Events with `seq > after`, in order, at most `limit`.
pub(super) fn events_after(conn: &Connection, after: u64, limit: usize) -> Result<Vec<ChangeEvent>, StorageError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM mishkah_events WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after as i64, limit as i64], row_to_event)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// The first retained sequence (everything before was compacted) and the last one.
pub(super) fn bounds(conn: &Connection) -> Result<(u64, u64), StorageError> {
    // Never compacted: no row. Any other failure is an error, not "never compacted": a delta
    // computed from a wrong bound would silently skip the compacted events.
    let stored: Option<String> = conn
        .query_row("SELECT value FROM mishkah_meta WHERE key = 'compacted_through'", [], |r| r.get(0))
        .optional()?;
    let checkpoint: u64 = match stored {
        None => 0,
        Some(v) => {
            v.parse().map_err(|_| StorageError::Corrupt(format!("compacted_through is `{v}`, not a sequence")))?
        }
    };
    let max: Option<i64> = conn.query_row("SELECT MAX(seq) FROM mishkah_events", [], |r| r.get(0))?;
    let head = (max.unwrap_or(0) as u64).max(checkpoint);
    Ok((checkpoint + 1, head))
}

/// Deletes events up to `through` (the checkpoint); later cursors before it must resync in full.
/// Mutation ids of compacted events are forgotten too, so compaction also bounds dedup memory.
pub(super) fn compact(conn: &Connection, through: u64) -> Result<usize, StorageError> {
    let tx = conn.unchecked_transaction()?;
    let (_, head) = bounds(&tx)?;
    let through = through.min(head);
    let deleted = tx.execute("DELETE FROM mishkah_events WHERE seq <= ?1", params![through as i64])?;
    tx.execute(
        "INSERT INTO mishkah_meta (key, value) VALUES ('compacted_through', ?1)
         ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        params![through.to_string()],
    )?;
    tx.commit()?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, ModuleDb, ModuleReader, NewEvent};
    use mishkah_core::Schema;
    use serde_json::json;

    #[test]
    fn the_log_keeps_what_a_reader_that_did_not_write_needs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let schema = Schema::from_json(&json!({"schema": {"tables": [{"name": "t", "fields": [
            {"name": "id", "type": "string", "primaryKey": true}, {"name": "n", "type": "integer"}]}]}}))
        .unwrap();
        let table = schema.table("t").unwrap();
        let (mut db, _) = ModuleDb::open(&path, &[table], Durability::Normal).unwrap();
        let row = |n: i64| json!({"id": "a", "n": n}).as_object().unwrap().clone();
        let change = |kind, row: Option<Row>, version| Change {
            table: "t".into(),
            key: RecordKey("a".into()),
            kind,
            row,
            version,
            coerced: Vec::new(),
            unknown_fields: Vec::new(),
            tolerated: Vec::new(),
        };
        let meta = json!({"device": "till-1"});
        let steps = [
            (change(ChangeKind::Insert, Some(row(1)), 1), None),
            (change(ChangeKind::Update, Some(row(2)), 2), Some(row(1))),
            (change(ChangeKind::Delete, None, 3), Some(row(2))),
        ];
        let mut tx = db.begin().unwrap();
        for (change, before) in &steps {
            let ops = tx.ops();
            // The writer reads the row before it changes it; the log reuses that read.
            assert_eq!(ops.row(table, &change.key).unwrap(), *before);
            ops.store_change(table, change).unwrap();
            ops.append_event(NewEvent {
                change: change.clone(),
                mutation: None,
                source: "rest",
                meta: &meta,
                created_at: "2026-12-05T00:00:00.000Z",
                actor: Some("cashier-1"),
                previous: before.as_ref(),
                table_as_sent: Some("T"),
            })
            .unwrap();
        }
        tx.commit().unwrap();
        drop(db);

        let logged = ModuleReader::open(&path).unwrap().logged_after(0, 10).unwrap();
        let befores: Vec<_> = logged.iter().map(|l| l.before.clone()).collect();
        assert_eq!(befores, [Before::Absent, Before::Row(row(1)), Before::Row(row(2))]);
        for l in &logged {
            assert_eq!((l.source.as_str(), &l.meta, l.actor.as_deref()), ("rest", &meta, Some("cashier-1")));
            assert_eq!(l.table_as_sent.as_deref(), Some("T"));
        }
        assert_eq!(logged[1].event.change.row, Some(row(2)));
    }

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
