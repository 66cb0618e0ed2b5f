//! One module's store copied into another store's empty module, as of one commit of the source:
//! rows, the whole event log as logged, counters, archives and the compaction mark, all read in
//! one read transaction while the source's writers go on. A copy, not new writes: sequences,
//! event ids and mutation ids stay what they were. `mishkah migrate` moves stores with it; a
//! backup of a store without an online copy of its own (PostgreSQL) exports with it.

use mishkah_core::{Change, ChangeKind, RecordKey, Row, Table};

use crate::storage::{ModuleRead, ModuleReads, ModuleWriter, StorageError};

/// Rows or events per transaction of the copy.
const CHUNK: usize = 5_000;

/// What was copied of one module.
#[derive(Debug, Default)]
pub struct Copied {
    pub rows: usize,
    pub events: usize,
    pub counters: usize,
    pub archived: usize,
    /// The last sequence copied.
    pub head: u64,
}

/// Copies `tables` of `source` into `writer` (a module holding nothing yet; `adhoc` are the
/// ad-hoc tables among `tables`, created first) and marks it initialized.
pub fn copy(
    source: &dyn ModuleReads,
    tables: &[Table],
    adhoc: &[String],
    writer: &mut dyn ModuleWriter,
) -> Result<Copied, StorageError> {
    for table in tables.iter().filter(|t| adhoc.contains(&t.name)) {
        writer.add_adhoc_table(table)?;
    }
    let copied = crate::migrate::read(source, |r| {
        let mut copied = Copied::default();
        for table in tables {
            copied.rows += copy_rows(r, table, writer)?;
        }
        let (oldest, head) = r.bounds()?;
        copied.head = head;
        writer.import_compaction(oldest - 1)?;
        copied.events = copy_log(r, oldest - 1, writer)?;
        (copied.counters, copied.archived) = copy_counters_and_archives(r, tables, writer)?;
        Ok(copied)
    })?;
    writer.mark_initialized(&crate::clock::now_iso())?;
    Ok(copied)
}

fn copy_rows(r: &dyn ModuleRead, table: &Table, writer: &mut dyn ModuleWriter) -> Result<usize, StorageError> {
    let mut chunk: Vec<Row> = Vec::with_capacity(CHUNK);
    let mut rows = 0;
    r.each_doc(table, &mut |doc| {
        chunk.push(crate::storage::parse_doc(doc)?);
        if chunk.len() == CHUNK {
            rows += store_rows(table, &std::mem::take(&mut chunk), writer)?;
        }
        Ok(())
    })?;
    Ok(rows + store_rows(table, &chunk, writer)?)
}

fn store_rows(table: &Table, rows: &[Row], writer: &mut dyn ModuleWriter) -> Result<usize, StorageError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = writer.begin()?;
    for row in rows {
        let key = RecordKey::of(table, row)
            .map_err(|e| StorageError::Corrupt(format!("a `{}` row without its key: {e}", table.name)))?;
        let change = Change {
            table: table.name.clone(),
            key,
            kind: ChangeKind::Insert,
            row: Some(row.clone()),
            version: row.get("version").and_then(serde_json::Value::as_i64).unwrap_or(1),
            coerced: Vec::new(),
            unknown_fields: Vec::new(),
            tolerated: Vec::new(),
        };
        tx.ops().store_change(table, &change)?;
    }
    tx.commit()?;
    Ok(rows.len())
}

fn copy_log(r: &dyn ModuleRead, mut after: u64, writer: &mut dyn ModuleWriter) -> Result<usize, StorageError> {
    let mut events = 0;
    loop {
        let page = r.logged_after(after, CHUNK)?;
        let Some(last) = page.last().map(|l| l.event.sequence) else { return Ok(events) };
        let mut tx = writer.begin()?;
        for logged in &page {
            tx.ops().import_event(logged)?;
        }
        tx.commit()?;
        events += page.len();
        after = last;
    }
}

fn copy_counters_and_archives(
    r: &dyn ModuleRead,
    tables: &[Table],
    writer: &mut dyn ModuleWriter,
) -> Result<(usize, usize), StorageError> {
    let now = crate::clock::now_iso();
    let counters = r.counters()?;
    let mut tx = writer.begin()?;
    for (key, last) in &counters {
        tx.ops().set_counter(key, *last, &now)?;
    }
    let mut archived = 0;
    for (archive, _, _, at) in r.archives()? {
        for (table_name, row) in r.archived_rows(&archive)? {
            let Some(table) = tables.iter().find(|t| t.name == table_name) else { continue };
            let key = RecordKey::of(table, &row)
                .map_err(|e| StorageError::Corrupt(format!("an archived `{table_name}` row without its key: {e}")))?;
            tx.ops().archive_row(&archive, table, &key, &row, &at)?;
            archived += 1;
        }
    }
    tx.commit()?;
    Ok((counters.len(), archived))
}
