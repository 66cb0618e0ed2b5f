//! Full-text search on PostgreSQL. A table searched once gets a `tsvector` column holding the
//! words of each row's `mishkah_core::search` folded text — the core's words exactly, through
//! `array_to_tsvector`, with no parser of PostgreSQL's own in between (it would keep an e-mail
//! address whole where the core splits it) — and a GIN index; every write keeps it from then on,
//! in the row's own statement. A query's terms (the last one a prefix) find the candidates
//! through the index; the core's matching decides among them, as without it. A table whose
//! searchable fields changed (a field made secret must leave the index) drops its column when
//! the module opens, and builds it again when next searched. Every writer learns which tables
//! keep an index at the start of each batch (in the head lock's own round trip), so a node that
//! opened the module before another node built one keeps it too.

use mishkah_core::search::{search_fields, search_text, SEARCH_TEXT_VERSION};
use mishkah_core::{Row, Table};
use mishkah_store::{parse_doc, StorageError};

use crate::db;
use crate::ddl::qualified;

/// PostgreSQL refuses a lexeme of 2 KiB or more; a word that long is not searched for.
const MAX_WORD_BYTES: usize = 2000;

/// What the index of `table` was built from: a change rebuilds it.
pub(crate) fn signature(table: &Table) -> String {
    format!("{};{}", search_fields(table).join(","), SEARCH_TEXT_VERSION)
}

/// Whether `table` has nothing to search (no index is ever built for it).
pub(crate) fn search_fields_empty(table: &Table) -> bool {
    search_fields(table).is_empty()
}

/// The words of `row` the index keeps, separated by spaces (a word has none: it is
/// alphanumeric).
pub(crate) fn words(table: &Table, row: &Row) -> String {
    let text = search_text(table, row);
    let words = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty() && w.len() < MAX_WORD_BYTES);
    words.collect::<Vec<_>>().join(" ")
}

/// The SQL that turns [`words`] into the column's value.
pub(crate) const TSVECTOR_OF: &str = "array_to_tsvector(string_to_array";

/// The `tsquery` for the core's query terms: every term a word, the last a prefix. `None` when
/// a term can never be a word (the core splits words at anything not alphanumeric): nothing
/// matches.
pub(crate) fn tsquery(terms: &[String]) -> Option<String> {
    if terms.is_empty() || terms.iter().any(|t| t.is_empty() || !t.chars().all(char::is_alphanumeric)) {
        return None;
    }
    let last = terms.len() - 1;
    let parts: Vec<String> =
        terms.iter().enumerate().map(|(i, t)| if i == last { format!("'{t}':*") } else { format!("'{t}'") }).collect();
    Some(parts.join(" & "))
}

fn marks_table(schema: &str) -> String {
    qualified(schema, "mishkah_search")
}

/// Builds the index of `table` unless it is there and current; `true` when it built one.
pub(crate) fn enable(client: &mut postgres::Client, schema: &str, table: &Table) -> Result<bool, StorageError> {
    if search_fields(table).is_empty() {
        return Ok(false);
    }
    let signature = signature(table);
    let marks = marks_table(schema);
    let mut tx = client.transaction().map_err(db)?;
    let built: Option<String> = tx
        .query_opt(&format!("SELECT fields FROM {marks} WHERE tbl = $1"), &[&table.name])
        .map_err(db)?
        .map(|r| r.get(0));
    if built.as_deref() == Some(signature.as_str()) {
        return Ok(false);
    }
    let name = mishkah_store::layout::table_name(table);
    let t = qualified(schema, &name);
    tx.batch_execute(&format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS mishkah_search tsvector;")).map_err(db)?;
    let rows = tx.query(&format!("SELECT mishkah_key, mishkah_doc FROM {t}"), &[]).map_err(db)?;
    let update = format!(
        "UPDATE {t} SET mishkah_search = {TSVECTOR_OF}(u.w, ' ')) FROM unnest($1::text[], $2::text[]) AS u(k, w)
         WHERE mishkah_key = u.k"
    );
    for chunk in rows.chunks(5_000) {
        let mut keys = Vec::with_capacity(chunk.len());
        let mut texts = Vec::with_capacity(chunk.len());
        for r in chunk {
            keys.push(r.get::<_, String>(0));
            texts.push(words(table, &parse_doc(r.get(1))?));
        }
        tx.execute(&update, &[&keys, &texts]).map_err(db)?;
    }
    // Built once over the filled column: far cheaper than keeping it through every update above.
    tx.batch_execute(&format!("CREATE INDEX IF NOT EXISTS \"{name}_search\" ON {t} USING GIN (mishkah_search);"))
        .map_err(db)?;
    tx.execute(
        &format!(
            "INSERT INTO {marks} (tbl, fields) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET fields = excluded.fields"
        ),
        &[&table.name, &signature],
    )
    .map_err(db)?;
    tx.commit().map_err(db)?;
    Ok(true)
}

/// On open: an index built from other fields than `table` searches now is dropped (built again
/// when the table is next searched).
pub(crate) fn forget_if_changed(
    tx: &mut postgres::Transaction<'_>,
    schema: &str,
    table: &Table,
) -> Result<(), StorageError> {
    let marks = marks_table(schema);
    let built: Option<String> = tx
        .query_opt(&format!("SELECT fields FROM {marks} WHERE tbl = $1"), &[&table.name])
        .map_err(db)?
        .map(|r| r.get(0));
    if built.is_none() || built.as_deref() == Some(signature(table).as_str()) {
        return Ok(());
    }
    let t = qualified(schema, &mishkah_store::layout::table_name(table));
    tx.execute(&format!("DELETE FROM {marks} WHERE tbl = $1"), &[&table.name]).map_err(db)?;
    tx.batch_execute(&format!("ALTER TABLE {t} DROP COLUMN IF EXISTS mishkah_search")).map_err(db)?;
    Ok(())
}

/// The tables of the module whose index is built and current, as the writer keeps them.
pub(crate) fn indexed(client: &mut impl postgres::GenericClient, schema: &str) -> Result<Vec<String>, StorageError> {
    let rows = client.query(&format!("SELECT tbl FROM {}", marks_table(schema)), &[]).map_err(db)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_every_term_a_word_and_the_last_a_prefix() {
        let terms = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(tsquery(&terms(&["cafe", "kosh"])).as_deref(), Some("'cafe' & 'kosh':*"));
        assert_eq!(tsquery(&terms(&["مطعم"])).as_deref(), Some("'مطعم':*"));
        assert_eq!(tsquery(&terms(&["a'b"])), None, "never a word of the core's");
        assert_eq!(tsquery(&[]), None);
    }
}
