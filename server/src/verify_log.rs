//! `mishkah verify --data DIR` (no `--against`): every module's tables checked against its own
//! event log — each row must be what the last event of its key wrote, a row the log deleted must
//! be gone, and (on a log never compacted) every row must have an event. What a stray hand, a
//! disk or a bug changed behind the write path shows up as a difference.

use std::collections::BTreeMap;

use mishkah_core::{RecordKey, Row};

use crate::datadir::DataDir;
use crate::migrate::MigrateError;
use crate::storage::{Backend, ModuleAt, ModuleRead, StorageError};

/// Events read at a time.
const PAGE: usize = 5_000;

/// Each difference between a module's tables and its log, one line each.
pub fn verify(data: &DataDir, backend: &dyn Backend) -> Result<Vec<String>, MigrateError> {
    let mut differences = Vec::new();
    for (branch, module) in crate::migrate::modules(data) {
        let dir = data.module_dir(&branch, &module);
        if !backend.initialized(&ModuleAt { branch: &branch, module: &module, dir: &dir })? {
            continue;
        }
        let (opened, tables) = crate::migrate::open(backend, data, &branch, &module)?;
        let found = crate::migrate::read(&*opened.reads, |r| compare(r, &tables))?;
        differences.extend(found.into_iter().map(|d| format!("{branch}/{module}: {d}")));
    }
    Ok(differences)
}

fn compare(r: &dyn ModuleRead, tables: &[mishkah_core::Table]) -> Result<Vec<String>, StorageError> {
    let (oldest, _) = r.bounds()?;
    // (table, key) → the sequence and row of its last logged change (`None`: deleted).
    let mut logged: BTreeMap<(String, RecordKey), (u64, Option<Row>)> = BTreeMap::new();
    let mut after = oldest.saturating_sub(1);
    loop {
        let page = r.logged_after(after, PAGE)?;
        let Some(last) = page.last().map(|l| l.event.sequence) else { break };
        for l in page {
            let change = l.event.change;
            logged.insert((change.table, change.key), (l.event.sequence, change.row));
        }
        after = last;
    }
    let mut differences = Vec::new();
    for table in tables {
        r.each_doc(table, &mut |doc| {
            let row = crate::storage::parse_doc(doc)?;
            let key = RecordKey::of(table, &row).unwrap_or_else(|_| RecordKey(doc.to_owned()));
            match logged.remove(&(table.name.clone(), key.clone())) {
                Some((_, Some(expected))) if expected == row => {}
                Some((seq, Some(_))) => {
                    differences.push(format!("row {}/{} differs from what event #{seq} wrote", table.name, key.0))
                }
                Some((seq, None)) => {
                    differences.push(format!("row {}/{} exists, though event #{seq} deleted it", table.name, key.0))
                }
                None if oldest <= 1 => {
                    differences.push(format!("row {}/{} has no event in the log", table.name, key.0))
                }
                None => {}
            }
            Ok(())
        })?;
    }
    for ((table, key), (seq, row)) in logged {
        if row.is_some() && tables.iter().any(|t| t.name == table) {
            differences.push(format!("row {table}/{} is missing: event #{seq} wrote it", key.0));
        }
    }
    Ok(differences)
}
