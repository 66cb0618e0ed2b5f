//! Snapshots: every module's store as of one commit (the backend's own online copy, while the
//! writers go on) with the data directory's configuration, staged beside the data directory,
//! streamed to the target, and described by a manifest written last.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use super::target::Target;
use super::{block_on, BackupError, Progress, Unit};
use crate::datadir::DataDir;
use crate::storage::{Backend, ModuleAt, StorageError};

/// Where snapshots are kept on a target.
pub const FOLDER: &str = "snapshots";

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
    /// Its folder under `snapshots/` (the UTC time it began, sortable).
    pub name: String,
    pub created_at: String,
    pub modules: Vec<BackedModule>,
    /// Every file of `data/`, with its checksum (module stores included).
    pub files: Vec<BackedFile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackedModule {
    pub branch: String,
    pub module: String,
    /// The last sequence the copy holds.
    pub head: u64,
    /// Its directory, relative to `data/`.
    pub dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackedFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// The head the snapshot holds of a module (none: the module was not in it).
    pub fn head_of(&self, branch: &str, module: &str) -> Option<u64> {
        self.modules.iter().find(|m| m.branch == branch && m.module == module).map(|m| m.head)
    }

    /// Whether `file` is some module's store other than `keep` (a restore of one module leaves
    /// the others' stores behind).
    fn belongs_elsewhere(&self, file: &BackedFile, keep: (&str, &str)) -> bool {
        self.modules
            .iter()
            .any(|m| (m.branch != keep.0 || m.module != keep.1) && file.path.starts_with(&format!("{}/live/", m.dir)))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// Takes a snapshot of `data` (its modules in `backend`) onto `target`. Blocks.
pub fn take(
    data: &DataDir,
    backend: &dyn Backend,
    target: &Target,
    runtime: &Handle,
    progress: &Progress,
) -> Result<Manifest, BackupError> {
    let created_at = crate::clock::now_iso();
    let name = created_at.replace([':', '-'], "").replace('.', "");
    let staging = data.root().join(format!(".backup-{name}-{}", uuid::Uuid::new_v4().simple()));
    let taken = stage(data, backend, &staging.join("data"), progress)
        .and_then(|modules| upload(target, runtime, &staging.join("data"), &name, &created_at, modules, progress));
    let _ = std::fs::remove_dir_all(&staging);
    taken
}

/// Copies the configuration and each module's store into `copy`; the modules copied.
fn stage(
    data: &DataDir,
    backend: &dyn Backend,
    copy: &Path,
    progress: &Progress,
) -> Result<Vec<BackedModule>, BackupError> {
    std::fs::create_dir_all(copy).map_err(io(copy))?;
    copy_configuration(data.root(), data.root(), copy)?;
    let mut modules = Vec::new();
    for (branch, module) in crate::migrate::modules_in(data, backend)? {
        let dir = data.module_dir(&branch, &module);
        let at = ModuleAt { branch: &branch, module: &module, dir: &dir };
        if !backend.initialized(&at)? {
            continue;
        }
        let relative = dir.strip_prefix(data.root()).unwrap_or(&dir);
        let head = match backend.backup(&at, &copy.join(relative)) {
            Err(StorageError::Unsupported(_)) => export(data, backend, (&branch, &module), &copy.join(relative))?,
            other => other?,
        };
        progress.note(&format!("{branch}/{module}: copied through sequence {head}"));
        modules.push(BackedModule { branch, module, head, dir: relative.to_string_lossy().into_owned() });
    }
    Ok(modules)
}

/// A store without an online copy of its own (PostgreSQL) is exported, as of one commit, into the
/// embedded store's files: a backup restores the same way whatever store it came from (and
/// `mishkah migrate` moves it back). The head exported.
fn export(
    data: &DataDir,
    backend: &dyn Backend,
    (branch, module): (&str, &str),
    into: &Path,
) -> Result<u64, BackupError> {
    let (source, tables) = crate::migrate::open(backend, data, branch, module)?;
    let refs: Vec<&mishkah_core::Table> = tables.iter().collect();
    let at = ModuleAt { branch, module, dir: into };
    let target = crate::storage::SqliteBackend.open(&at, &refs, &crate::storage::OpenOptions::default())?;
    let mut writer = target.writer;
    let copied = crate::module_copy::copy(&*source.reads, &tables, &source.report.adhoc_tables, &mut *writer)?;
    Ok(copied.head)
}

fn upload(
    target: &Target,
    runtime: &Handle,
    copy: &Path,
    name: &str,
    created_at: &str,
    modules: Vec<BackedModule>,
    progress: &Progress,
) -> Result<Manifest, BackupError> {
    let mut paths = Vec::new();
    files_under(copy, &mut paths)?;
    let total = paths.iter().map(|p| p.metadata().map(|m| m.len()).unwrap_or(0)).sum();
    progress.step(&format!("uploading snapshot {name}"), total, Unit::Bytes);
    let mut files = Vec::new();
    for path in paths {
        let relative = path.strip_prefix(copy).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let key = format!("{FOLDER}/{name}/data/{relative}");
        let (bytes, sha256) = block_on(runtime, target.upload(&key, &path, &|n| progress.advance(n)))?;
        files.push(BackedFile { path: relative, bytes, sha256 });
    }
    let manifest = Manifest { version: 2, name: name.to_owned(), created_at: created_at.to_owned(), modules, files };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    block_on(runtime, target.put(&format!("{FOLDER}/{name}/manifest.json"), text))?;
    progress.finish();
    Ok(manifest)
}

/// The data directory's files but the module stores themselves (their `live/` directories, taken
/// by the store's own copy), the process lock, logs and unfinished backups.
fn copy_configuration(root: &Path, dir: &Path, to: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "live" || name == ".mishkah.lock" || name.ends_with(".log") || name.starts_with(".backup-") {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if entry.file_type().map_err(io(&path))?.is_dir() {
            copy_configuration(root, &path, to)?;
        } else {
            let out = to.join(relative);
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(&path, &out).map_err(io(&path))?;
        }
    }
    Ok(())
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.collect::<Result<_, _>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Every finished snapshot on `target`, oldest first.
pub async fn list(target: &Target) -> Result<Vec<Manifest>, BackupError> {
    let mut manifests = Vec::new();
    for name in target.folders(FOLDER).await? {
        let key = format!("{FOLDER}/{name}/manifest.json");
        let Some(bytes) = target.get(&key).await? else { continue };
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| BackupError::Target(format!("{}/{key}", target.name), e.to_string()))?;
        manifests.push(manifest);
    }
    Ok(manifests)
}

/// Copies a snapshot's files into the new data directory `to` (only one module's store when
/// `only`), each checked against the manifest as it arrives. Blocks.
pub fn fetch(
    target: &Target,
    runtime: &Handle,
    manifest: &Manifest,
    to: &Path,
    only: Option<(&str, &str)>,
    progress: &Progress,
) -> Result<(), BackupError> {
    let wanted: Vec<&BackedFile> =
        manifest.files.iter().filter(|f| only.is_none_or(|keep| !manifest.belongs_elsewhere(f, keep))).collect();
    progress.step(
        &format!("downloading snapshot {}", manifest.name),
        wanted.iter().map(|f| f.bytes).sum(),
        Unit::Bytes,
    );
    for file in wanted {
        let key = format!("{FOLDER}/{}/data/{}", manifest.name, file.path);
        let out = to.join(&file.path);
        let got = block_on(runtime, target.download(&key, &out, &|n| progress.advance(n)))?;
        if got != (file.bytes, file.sha256.clone()) {
            return Err(BackupError::Damaged(format!("{}/{key}", target.name.trim_end_matches('/'))));
        }
    }
    progress.finish();
    Ok(())
}

/// Deletes every snapshot but the newest `keep` (unfinished ones older than the newest kept
/// too); the oldest snapshot kept.
pub async fn prune(target: &Target, keep: usize) -> Result<Option<Manifest>, BackupError> {
    let finished = list(target).await?;
    let kept = finished.len().saturating_sub(keep.max(1));
    let oldest_kept = finished.get(kept).cloned();
    let Some(oldest) = &oldest_kept else { return Ok(None) };
    for name in target.folders(FOLDER).await? {
        if name < oldest.name {
            for object in target.list(&format!("{FOLDER}/{name}")).await? {
                target.delete(&object.key).await?;
            }
        }
    }
    Ok(oldest_kept)
}
