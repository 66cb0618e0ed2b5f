//! `mishkah migrate` and `mishkah verify`: every module of a data directory copied from one store
//! to another (rows, the whole event log as logged, counters, archives, the compaction mark), and
//! two stores compared. A copy, not new writes: sequences, event ids and mutation ids stay what
//! they were, so clients resume from their cursors against the new store.

use std::collections::BTreeMap;
use std::sync::Arc;

use mishkah_core::{RecordKey, Table};
use serde_json::Value;

use crate::datadir::DataDir;
use crate::storage::{consistent, Backend, ModuleAt, ModuleRead, ModuleReads, OpenOptions, Opened, StorageError};

/// Rows or events per transaction while copying.
const CHUNK: usize = 5_000;

/// Why a migration or a verification stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Data(#[from] crate::datadir::DataDirError),
    #[error("{branch}/{module} already holds data in the target store (head {head}): nothing was copied")]
    TargetNotEmpty { branch: String, module: String, head: u64 },
}

/// Every (branch, module) of the data directory: configured branches and those created since.
pub(crate) fn modules(data: &DataDir) -> Vec<(String, String)> {
    let mut branches: Vec<String> = data.branches.branches.keys().cloned().collect();
    branches.extend(data.unnamed_branches());
    branches.sort();
    branches.dedup();
    branches.iter().flat_map(|b| data.branches.modules_of(b).iter().map(move |m| (b.clone(), m.clone()))).collect()
}

/// Every (branch, module) of the data directory and, when the store is shared by several nodes,
/// of the branches other nodes created in it. Blocks.
pub(crate) fn modules_in(data: &DataDir, backend: &dyn Backend) -> Result<Vec<(String, String)>, StorageError> {
    let mut all = modules(data);
    for branch in backend.branches()?.unwrap_or_default() {
        all.extend(data.branches.modules_of(&branch).iter().map(|m| (branch.clone(), m.clone())));
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// A module's store on `backend`, with the schema's tables and the ones it already holds.
pub(crate) fn open(
    backend: &dyn Backend,
    data: &DataDir,
    branch: &str,
    module: &str,
) -> Result<(Opened, Vec<Table>), MigrateError> {
    let (schema, _) = data.schema_for(branch, module)?;
    let dir = data.module_dir(branch, module);
    let at = ModuleAt { branch, module, dir: &dir };
    let mut tables: Vec<Table> = schema.tables.values().cloned().collect();
    let refs: Vec<&Table> = tables.iter().collect();
    let opened = backend.open(&at, &refs, &OpenOptions::default())?;
    tables.extend(opened.report.adhoc_tables.iter().map(|name| crate::engine::seed::adhoc_table(name)));
    Ok((opened, tables))
}

pub(crate) fn read<T>(
    reads: &dyn ModuleReads,
    f: impl FnOnce(&dyn ModuleRead) -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let mut f = Some(f);
    let mut out = None;
    reads.with(&mut |reader| {
        if let Some(f) = f.take() {
            out = Some(consistent(reader, f));
        }
    })?;
    out.unwrap_or_else(|| Err(StorageError::Corrupt("no reader ran the read".into())))
}

pub use crate::module_copy::Copied;

/// Copies every module that `from` holds into `to`, which must hold none of them yet. `progress`
/// is told of each module when it is done.
pub fn migrate(
    data: &DataDir,
    from: &dyn Backend,
    to: &dyn Backend,
    mut progress: impl FnMut(&str, &str, &Copied),
) -> Result<(), MigrateError> {
    for (branch, module) in modules_in(data, from)? {
        let dir = data.module_dir(&branch, &module);
        if !from.initialized(&ModuleAt { branch: &branch, module: &module, dir: &dir })? {
            continue;
        }
        let copied = copy_module(data, from, to, (&branch, &module))?;
        progress(&branch, &module, &copied);
    }
    copy_shared_docs(data, from, to)
}

/// The documents every node reads alike (the API keys) go with the rows; the target's own, if
/// it has some, are kept.
fn copy_shared_docs(data: &DataDir, from: &dyn Backend, to: &dyn Backend) -> Result<(), MigrateError> {
    let (source, target) = (from.shared_docs(data.root()), to.shared_docs(data.root()));
    if let Some((_, text)) = source.get(crate::keys::KEYS_DOC)? {
        if !target.put(crate::keys::KEYS_DOC, &text, None)? {
            tracing::warn!("the target store has API keys already: the data directory's were not copied");
        }
    }
    Ok(())
}

fn copy_module(
    data: &DataDir,
    from: &dyn Backend,
    to: &dyn Backend,
    (branch, module): (&str, &str),
) -> Result<Copied, MigrateError> {
    let (source, tables) = open(from, data, branch, module)?;
    let (target, _) = open(to, data, branch, module)?;
    let mut writer = target.writer;
    if writer.head() > 0 {
        return Err(MigrateError::TargetNotEmpty { branch: branch.into(), module: module.into(), head: writer.head() });
    }
    Ok(crate::module_copy::copy(&*source.reads, &tables, &source.report.adhoc_tables, &mut *writer)?)
}

/// One difference between two stores.
pub type Difference = String;

/// Compares every module the data directory names in two stores: rows (by table and key, the
/// stored documents), the event log as logged, counters and the log's bounds. Returns what
/// differs (nothing: the stores hold the same).
pub fn verify(data: &DataDir, a: &dyn Backend, b: &dyn Backend) -> Result<Vec<Difference>, MigrateError> {
    let mut differences = Vec::new();
    for (branch, module) in modules(data) {
        let dir = data.module_dir(&branch, &module);
        let at = ModuleAt { branch: &branch, module: &module, dir: &dir };
        match (a.initialized(&at)?, b.initialized(&at)?) {
            (false, false) => continue,
            (true, true) => {}
            (x, _) => {
                differences
                    .push(format!("{branch}/{module}: only in the {} store", if x { "first" } else { "second" }));
                continue;
            }
        }
        let (left, tables) = open(a, data, &branch, &module)?;
        let (right, _) = open(b, data, &branch, &module)?;
        let left = snapshot(&*left.reads, &tables)?;
        let right = snapshot(&*right.reads, &tables)?;
        for (what, l) in &left {
            match right.get(what) {
                Some(r) if r == l => {}
                Some(_) => differences.push(format!("{branch}/{module}: {what} differs")),
                None => differences.push(format!("{branch}/{module}: {what} only in the first store")),
            }
        }
        for what in right.keys().filter(|k| !left.contains_key(*k)) {
            differences.push(format!("{branch}/{module}: {what} only in the second store"));
        }
    }
    let doc = crate::keys::KEYS_DOC;
    let (left, right) = (a.shared_docs(data.root()).get(doc)?, b.shared_docs(data.root()).get(doc)?);
    let parsed =
        |d: Option<(u64, String)>| d.map(|(_, t)| serde_json::from_str::<Value>(&t).unwrap_or(Value::String(t)));
    if parsed(left) != parsed(right) {
        differences.push(format!("{doc} differs"));
    }
    Ok(differences)
}

/// Everything comparable of a module, by what it is (`row t/key`, `event 12`, `counter k`, `bounds`).
fn snapshot(reads: &dyn ModuleReads, tables: &[Table]) -> Result<BTreeMap<String, String>, StorageError> {
    read(reads, |r| {
        let mut out = BTreeMap::new();
        for table in tables {
            r.each_doc(table, &mut |doc| {
                let row = crate::storage::parse_doc(doc)?;
                let key = RecordKey::of(table, &row).map(|k| k.0).unwrap_or_else(|_| doc.to_owned());
                out.insert(format!("row {}/{key}", table.name), doc.to_owned());
                Ok(())
            })?;
        }
        let (oldest, head) = r.bounds()?;
        out.insert("bounds".into(), format!("{oldest}..={head}"));
        let mut after = oldest.saturating_sub(1);
        loop {
            let page = r.logged_after(after, CHUNK)?;
            let Some(last) = page.last().map(|l| l.event.sequence) else { break };
            for l in page {
                out.insert(format!("event {}", l.event.sequence), format!("{l:?}"));
            }
            after = last;
        }
        for (key, last) in r.counters()? {
            out.insert(format!("counter {key}"), last.to_string());
        }
        Ok(out)
    })
}

/// The backend a `--store`-like argument names (none: SQLite in the data directory).
pub fn backend(store: Option<&str>) -> Result<Arc<dyn Backend>, StorageError> {
    crate::storage::backend(store)
}
