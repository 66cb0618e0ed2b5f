//! Tables generated from the schema, and additive migration.

use mishkah_core::schema::{FieldType, Table};
use rusqlite::{params, Connection, OptionalExtension};

use crate::db;
use mishkah_store::StorageError;

use mishkah_store::layout::{fingerprint, is_safe_identifier, lacking_default, typed_fields};
use mishkah_store::schema_change::{self, TableImpact};

/// The SQL table name for a schema table.
pub(super) fn sql_table(table: &Table) -> String {
    mishkah_store::layout::table_name(table)
}

/// Typed columns: (column, field name, SQL type), as [`typed_fields`] lays them out.
pub(super) fn typed_columns(table: &Table) -> Vec<(String, String, &'static str)> {
    typed_fields(table).into_iter().map(|(column, field, ty)| (column, field, sql_type(ty))).collect()
}

fn sql_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Integer | FieldType::Boolean => "INTEGER",
        FieldType::Decimal => "REAL",
        FieldType::Text | FieldType::Date | FieldType::Timestamp | FieldType::Json => "TEXT",
    }
}

/// Creates the internal tables.
pub(super) fn create_internal(conn: &Connection) -> Result<(), StorageError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS mishkah_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS mishkah_events (
             seq INTEGER PRIMARY KEY,
             event_id TEXT NOT NULL,
             mutation_id TEXT UNIQUE,
             tbl TEXT NOT NULL,
             action TEXT NOT NULL,
             record_key TEXT NOT NULL,
             version INTEGER NOT NULL,
             row TEXT,
             created_at TEXT NOT NULL,
             source TEXT NOT NULL,
             meta TEXT,
             actor TEXT,
             mutation_digest BLOB,
             prev_row TEXT,
             sent_table TEXT,
             txn TEXT);
         CREATE TABLE IF NOT EXISTS mishkah_counters (counter_key TEXT PRIMARY KEY, last INTEGER NOT NULL, updated_at TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS mishkah_tables (name TEXT PRIMARY KEY, sql_name TEXT NOT NULL, columns TEXT NOT NULL, adhoc INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS mishkah_archive (
             archive TEXT NOT NULL, tbl TEXT NOT NULL, record_key TEXT NOT NULL, doc TEXT NOT NULL, archived_at TEXT NOT NULL,
             PRIMARY KEY (archive, tbl, record_key));",
    ).map_err(db)?;
    // Logs from before events recorded who wrote them, what a mutation id's write was, the row
    // before the change, the table's name as sent, or the transaction gain the columns (empty
    // for old events).
    let added =
        [("actor", "TEXT"), ("mutation_digest", "BLOB"), ("prev_row", "TEXT"), ("sent_table", "TEXT"), ("txn", "TEXT")];
    for (column, ty) in added {
        let has: bool = conn
            .query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('mishkah_events') WHERE name = ?1", [column], |r| {
                r.get(0)
            })
            .map_err(db)?;
        if !has {
            conn.execute(&format!("ALTER TABLE mishkah_events ADD COLUMN {column} {ty}"), []).map_err(db)?;
        }
    }
    Ok(())
}

/// Every `(key, document)` of a stored table, in key order.
pub(super) fn each_doc(
    conn: &Connection,
    sql_name: &str,
    f: &mut dyn FnMut(&str, &str) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    let mut stmt = conn
        .prepare(&format!("SELECT mishkah_key, mishkah_doc FROM \"{sql_name}\" ORDER BY mishkah_key"))
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let (key, doc): (String, String) = (row.get(0).map_err(db)?, row.get(1).map_err(db)?);
        f(&key, &doc)?;
    }
    Ok(())
}

/// What `tables` would do to the stored rows, for the tables whose stored layout differs.
pub(super) fn inspect(conn: &Connection, tables: &[&Table]) -> Result<Vec<TableImpact>, StorageError> {
    let mut out = Vec::new();
    for table in tables {
        let stored: Option<(String, String)> = conn
            .query_row("SELECT sql_name, columns FROM mishkah_tables WHERE name = ?1", params![table.name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db)?;
        let Some((sql_name, old)) = stored.filter(|(_, old)| *old != fingerprint(table)) else { continue };
        let impact = schema_change::impact(table, &old, &mut |f| each_doc(conn, &sql_name, f))?;
        if !impact.is_empty() {
            out.push(impact);
        }
    }
    Ok(out)
}

/// Creates or additively migrates one table. Returns what it did, for the log.
pub(super) fn migrate_table(conn: &Connection, table: &Table, adhoc: bool) -> Result<Vec<String>, StorageError> {
    let sql_name = sql_table(table);
    let columns = typed_columns(table);
    let fingerprint = fingerprint(table);
    let mut actions = Vec::new();

    let previous: Option<(String, String)> = conn
        .query_row("SELECT sql_name, columns FROM mishkah_tables WHERE name = ?1", params![table.name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    if let Some((stored_as, old)) = &previous {
        schema_change::check_key(table, old)?;
        if schema_change::retypes(table, old)? {
            let impact = schema_change::impact(table, old, &mut |f| each_doc(conn, stored_as, f))?;
            return Err(impact
                .refusal()
                .unwrap_or_else(|| StorageError::Corrupt("a type change went unreported".into())));
        }
    }

    let mut ddl = format!(
        "CREATE TABLE IF NOT EXISTS \"{sql_name}\" (mishkah_key TEXT PRIMARY KEY, mishkah_version INTEGER NOT NULL, mishkah_doc TEXT NOT NULL"
    );
    for (column, _, ty) in &columns {
        ddl.push_str(&format!(", \"{column}\" {ty}"));
    }
    ddl.push(')');
    conn.execute(&ddl, []).map_err(db)?;

    let existing: Vec<String> = {
        let mut stmt = conn.prepare(&format!("PRAGMA table_info(\"{sql_name}\")")).map_err(db)?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(1)).map_err(db)?;
        rows.collect::<Result<_, _>>().map_err(db)?
    };
    for (column, _, ty) in &columns {
        if !existing.iter().any(|c| c.eq_ignore_ascii_case(column)) {
            conn.execute(&format!("ALTER TABLE \"{sql_name}\" ADD COLUMN \"{column}\" {ty}"), []).map_err(db)?;
            actions.push(format!("added column {}.{column}", table.name));
        }
    }

    let column_of = |field: &str| columns.iter().find(|(_, f, _)| f == field).map(|(c, _, _)| c.clone());
    for field in &table.fields {
        let Some(column) = column_of(&field.name) else {
            continue;
        };
        if field.primary_key && table.key_fields().len() == 1 {
            continue;
        }
        let plain = format!("i_{sql_name}_{column}");
        if field.unique {
            let name = format!("u_{sql_name}_{column}");
            if let Some(action) = unique_or_kept_plain(conn, &name, &plain, &sql_name, &column)? {
                actions.push(format!("{}.{}: {action}", table.name, field.name));
            }
        } else if field.indexed {
            conn.execute(&format!("CREATE INDEX IF NOT EXISTS \"{plain}\" ON \"{sql_name}\" (\"{column}\")"), [])
                .map_err(db)?;
        }
    }
    for column in lacking_default(table, &column_of) {
        conn.execute(
            &format!(
                "CREATE INDEX IF NOT EXISTS \"bf_{sql_name}_{column}\" ON \"{sql_name}\" (\"{column}\") WHERE \"{column}\" IS NULL"
            ),
            [],
        )
        .map_err(db)?;
    }
    for index in &table.indexes {
        let cols: Option<Vec<String>> = index.fields.iter().map(|f| column_of(f)).collect();
        let Some(cols) = cols else { continue };
        if !is_safe_identifier(&index.name) {
            continue;
        }
        let unique = if index.unique { "UNIQUE " } else { "" };
        let list = cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
        conn.execute(
            &format!("CREATE {unique}INDEX IF NOT EXISTS \"ix_{sql_name}_{}\" ON \"{sql_name}\" ({list})", index.name),
            [],
        )
        .map_err(db)?;
    }

    if let Some(action) = super::search::refresh_index(conn, table)? {
        actions.push(action);
    }
    if previous.as_ref().map(|(_, old)| old) != Some(&fingerprint) {
        conn.execute(
            "INSERT INTO mishkah_tables (name, sql_name, columns, adhoc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET sql_name = excluded.sql_name, columns = excluded.columns",
            params![table.name, sql_name, fingerprint, adhoc],
        )
        .map_err(db)?;
        if previous.is_none() {
            actions.push(format!("created table {}", table.name));
        }
    }
    Ok(actions)
}

/// Makes `column` unique, unless the stored rows already share values (an index a seed relaxed,
/// and the seed file since removed or changed): then it stays a plain index, no row is lost, the
/// database opens, and what was kept is reported.
fn unique_or_kept_plain(
    conn: &Connection,
    unique: &str,
    plain: &str,
    sql_name: &str,
    column: &str,
) -> Result<Option<String>, StorageError> {
    let create = |kind: &str, name: &str| {
        conn.execute(&format!("CREATE {kind}INDEX IF NOT EXISTS \"{name}\" ON \"{sql_name}\" (\"{column}\")"), [])
    };
    match create("UNIQUE ", unique) {
        Ok(_) => Ok(None),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            create("", plain).map_err(db)?;
            Ok(Some("stored rows share values: kept a plain index instead of a unique one".into()))
        }
        Err(e) => Err(db(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_log_from_before_actors_and_digests_gains_the_columns_and_keeps_its_events() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE mishkah_events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL, mutation_id TEXT UNIQUE,
                 tbl TEXT NOT NULL, action TEXT NOT NULL, record_key TEXT NOT NULL, version INTEGER NOT NULL, row TEXT,
                 created_at TEXT NOT NULL, source TEXT NOT NULL, meta TEXT);
             INSERT INTO mishkah_events VALUES (1, 'evt-1', NULL, 't', 'insert', 'k', 1, '{}', 'now', 'ws', NULL);",
        )
        .unwrap();
        create_internal(&conn).unwrap();
        create_internal(&conn).unwrap();
        let (actor, digest, before, txn): (Option<String>, Option<Vec<u8>>, Option<String>, Option<String>) = conn
            .query_row("SELECT actor, mutation_digest, prev_row, txn FROM mishkah_events", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .unwrap();
        assert_eq!((actor, digest, before, txn), (None, None, None, None));
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(is_safe_identifier("order_header"));
        assert!(!is_safe_identifier("x\"; DROP TABLE y"));
        assert!(!is_safe_identifier("mishkah_events"));
        assert!(!is_safe_identifier("1abc"));
    }
}
