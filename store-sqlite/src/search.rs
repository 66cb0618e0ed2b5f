//! Full-text search: one SQLite FTS5 index per table with searchable fields (text and bilingual
//! JSON fields, never hidden ones), written in the same transaction as the row, so it is never
//! stale and never ahead. A table's index is built the first time the table is searched (by the
//! writer, between two batches) and kept from then on: keeping one costs a write 10–35 µs
//! (`docs/BENCHMARKS.md`), which tables nobody searches should not pay. The index holds `mishkah_core::search` folded text (Arabic folded
//! across tashkeel, tatweel, hamza forms, ta marbuta, alef maqsura), keyed by the row's rowid;
//! FTS5's `unicode61 remove_diacritics 2` tokenizer folds Latin case and accents. Queries are
//! folded the same way; the last term matches as a prefix (search as you type).

use mishkah_core::search::{query_terms, search_fields, search_text};
use mishkah_core::{Row, Table};
use rusqlite::{params, Connection, OptionalExtension};

use super::ddl::sql_table;
use super::filter_sql::{compile, Sqlite};
use crate::db;
use mishkah_store::{parse_doc, StorageError};

use super::ModuleReader;

/// The index of `table`, or `None` when it has nothing to search.
pub(super) fn fts_table(table: &Table) -> Option<String> {
    (!search_fields(table).is_empty()).then(|| format!("mishkah_fts_{}", sql_table(table)))
}

fn meta_key(table: &Table) -> String {
    format!("fts:{}", table.name)
}

/// Whether `table` has a search index (it was searched once).
pub(super) fn is_indexed(conn: &Connection, table: &Table) -> Result<bool, StorageError> {
    if fts_table(table).is_none() {
        return Ok(false);
    }
    let found: Option<String> = conn
        .query_row("SELECT value FROM mishkah_meta WHERE key = ?1", params![meta_key(table)], |r| r.get(0))
        .optional()
        .map_err(db)?;
    Ok(found.is_some())
}

/// On open: an index that exists is rebuilt when the searchable fields changed (a field made
/// secret must leave it).
pub(super) fn refresh_index(conn: &Connection, table: &Table) -> Result<Option<String>, StorageError> {
    if !is_indexed(conn, table)? {
        return Ok(None);
    }
    build_index(conn, table)
}

/// Creates the index of `table` and fills it from the stored rows, unless it is there and
/// current. Runs inside the caller's transaction.
pub(super) fn build_index(conn: &Connection, table: &Table) -> Result<Option<String>, StorageError> {
    let Some(fts) = fts_table(table) else { return Ok(None) };
    let fields = format!("{};{}", search_fields(table).join(","), mishkah_core::search::SEARCH_TEXT_VERSION);
    let meta_key = meta_key(table);
    let indexed: Option<String> = conn
        .query_row("SELECT value FROM mishkah_meta WHERE key = ?1", params![meta_key], |r| r.get(0))
        .optional()
        .map_err(db)?;
    conn.execute(
        &format!(
            // Contentless: the rows hold the text already. (Positions stay: without them BM25
            // cannot rank prefix matches.)
            "CREATE VIRTUAL TABLE IF NOT EXISTS \"{fts}\" USING fts5(body, content = '', contentless_delete = 1, \
             tokenize = 'unicode61 remove_diacritics 2')"
        ),
        [],
    )
    .map_err(db)?;
    if indexed.as_deref() == Some(fields.as_str()) {
        return Ok(None);
    }
    conn.execute(&format!("INSERT INTO \"{fts}\" (\"{fts}\") VALUES ('delete-all')"), []).map_err(db)?;
    let rows: Vec<(i64, String)> = {
        let mut stmt = conn.prepare(&format!("SELECT rowid, mishkah_doc FROM \"{}\"", sql_table(table))).map_err(db)?;
        let mapped = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        mapped.collect::<Result<_, _>>().map_err(db)?
    };
    for (rowid, doc) in &rows {
        let body = search_text(table, &parse_doc(doc)?);
        conn.execute(&format!("INSERT INTO \"{fts}\" (rowid, body) VALUES (?1, ?2)"), params![rowid, body])
            .map_err(db)?;
    }
    conn.execute(
        "INSERT INTO mishkah_meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![meta_key, fields],
    )
    .map_err(db)?;
    Ok(Some(format!("indexed {} rows of {} for search ({fields})", rows.len(), table.name)))
}

/// Keeps the index of `table` equal to the row at `rowid` after a write: `fresh` for a row that
/// was not there before (nothing to remove first), `row: None` after a delete.
pub(super) fn reindex(
    conn: &Connection,
    table: &Table,
    rowid: i64,
    row: Option<&Row>,
    fresh: bool,
) -> Result<(), StorageError> {
    let Some(fts) = fts_table(table) else { return Ok(()) };
    if !fresh {
        conn.prepare_cached(&format!("DELETE FROM \"{fts}\" WHERE rowid = ?1"))
            .map_err(db)?
            .execute(params![rowid])
            .map_err(db)?;
    }
    if let Some(row) = row {
        let body = search_text(table, row);
        conn.prepare_cached(&format!("INSERT INTO \"{fts}\" (rowid, body) VALUES (?1, ?2)"))
            .map_err(db)?
            .execute(params![rowid, body])
            .map_err(db)?;
    }
    Ok(())
}

/// The FTS5 query for what a person typed: every term must match, the last as a prefix; `None`
/// when nothing searchable is left.
fn match_expression(query: &str) -> Option<String> {
    let terms = query_terms(query);
    let last = terms.len().checked_sub(1)?;
    let quoted: Vec<String> = terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let q = format!("\"{}\"", t.replace('"', "\"\""));
            if i == last {
                format!("{q}*")
            } else {
                q
            }
        })
        .collect();
    Some(quoted.join(" "))
}

impl ModuleReader {
    /// Rows of `table` matching `query` (and `filter`, variables bound), best match first, each
    /// with its score (higher is better).
    pub(crate) fn search_rows(
        &self,
        table: &Table,
        query: &str,
        filter: &mishkah_core::query::Filter,
        limit: usize,
    ) -> Result<Vec<(Row, f64)>, StorageError> {
        let (Some(fts), Some(expression)) = (fts_table(table), match_expression(query)) else {
            return Ok(Vec::new());
        };
        let unfiltered = matches!(filter, mishkah_core::query::Filter::And(parts) if parts.is_empty());
        let compiled = compile(&Sqlite, table, filter, 3);
        let t = sql_table(table);
        // Unfiltered, the index alone ranks and cuts to `limit` before any row is read: a common
        // word matching thousands of rows costs their scores, not their documents.
        let sql = if unfiltered {
            format!(
                "SELECT t.mishkah_doc, s.score FROM (SELECT rowid AS r, -bm25(\"{fts}\") AS score FROM \"{fts}\" \
                 WHERE \"{fts}\" MATCH ?1 ORDER BY bm25(\"{fts}\"), rowid LIMIT ?2) AS s \
                 JOIN \"{t}\" AS t ON t.rowid = s.r ORDER BY s.score DESC, t.rowid"
            )
        } else {
            format!(
                "SELECT t.mishkah_doc, -bm25(\"{fts}\") FROM \"{fts}\" JOIN \"{t}\" AS t ON t.rowid = \"{fts}\".rowid \
                 WHERE \"{fts}\" MATCH ?1 AND {} ORDER BY bm25(\"{fts}\"), t.rowid LIMIT ?2",
                compiled.sql,
            )
        };
        let mut args: Vec<rusqlite::types::Value> =
            vec![expression.into(), (limit.min(i64::MAX as usize) as i64).into()];
        if !unfiltered {
            args.extend(compiled.params);
        }
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let found = stmt
            .query_map(rusqlite::params_from_iter(args), |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
            .map_err(db)?;
        let mut out = Vec::new();
        for hit in found {
            let (doc, score) = hit.map_err(db)?;
            out.push((parse_doc(&doc)?, score));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_rebuilt_without_a_field_made_secret() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::ddl::create_internal(&conn).unwrap();
        let mut schema = mishkah_core::Schema::from_json(&serde_json::json!({"tables": {"t": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "name": {"type": "text"}, "pin": {"type": "text"}}}}}))
        .unwrap();
        let table = schema.table("t").unwrap().clone();
        super::super::ddl::migrate_table(&conn, &table, false).unwrap();
        let t = sql_table(&table);
        conn.execute(
            &format!("INSERT INTO \"{t}\" (mishkah_key, mishkah_version, mishkah_doc) VALUES ('a', 1, ?1)"),
            params![r#"{"id": "a", "name": "Koshary", "pin": "7731"}"#],
        )
        .unwrap();
        build_index(&conn, &table).unwrap();
        let fts = fts_table(&table).unwrap();
        let hits = |q: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM \"{fts}\" WHERE \"{fts}\" MATCH ?1"), params![q], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!((hits("koshary"), hits("7731")), (1, 1));
        schema.tables.get_mut("t").unwrap().hidden.push("pin".into());
        let secret = schema.table("t").unwrap().clone();
        assert!(refresh_index(&conn, &secret).unwrap().is_some(), "the fields changed: rebuilt");
        assert_eq!((hits("koshary"), hits("7731")), (1, 0));
    }

    #[test]
    fn the_last_term_is_a_prefix_and_quotes_cannot_escape() {
        assert_eq!(match_expression("كُشَرى  large").as_deref(), Some("\"كشري\" \"large\"*"));
        assert_eq!(match_expression("a\"b OR").as_deref(), Some("\"a\"\"b\" \"or\"*"));
        assert_eq!(match_expression("   "), None);
    }
}
