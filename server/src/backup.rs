//! `mishkah backup` and `mishkah restore`: a consistent copy of every module, taken while the
//! server runs, with the data directory's configuration and a manifest (each module's head, each
//! file's SHA-256); and a data directory made again from one, after every checksum holds.
//!
//! A backup is a directory `<target>/<UTC time>/`: `data/` (the configuration as it was, each
//! module's store as of one commit) and `manifest.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::storage::{Backend, ModuleAt, StorageError};

/// Why a backup or a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a backup (no readable manifest.json): {1}")]
    NotABackup(PathBuf, String),
    #[error("{0}: its checksum does not match the manifest's — the backup is damaged")]
    Damaged(PathBuf),
    #[error("{0} exists and is not empty: a restore makes a new data directory")]
    TargetNotEmpty(PathBuf),
}

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
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

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_path_buf(), source }
}

/// Backs `data` up into a new directory under `target`; `progress` hears of each module copied.
pub fn backup(
    data: &DataDir,
    backend: &dyn Backend,
    target: &Path,
    mut progress: impl FnMut(&BackedModule),
) -> Result<(PathBuf, Manifest), BackupError> {
    let created_at = crate::clock::now_iso();
    let name = created_at.replace([':', '-'], "").replace('.', "");
    let root = target.join(&name);
    let copy = root.join("data");
    std::fs::create_dir_all(&copy).map_err(io(&copy))?;
    copy_configuration(data.root(), data.root(), &copy)?;
    let mut modules = Vec::new();
    for (branch, module) in crate::migrate::modules(data) {
        let dir = data.module_dir(&branch, &module);
        let at = ModuleAt { branch: &branch, module: &module, dir: &dir };
        if !backend.initialized(&at)? {
            continue;
        }
        let relative = dir.strip_prefix(data.root()).unwrap_or(&dir);
        let head = backend.backup(&at, &copy.join(relative))?;
        let backed = BackedModule { branch, module, head, dir: relative.to_string_lossy().into_owned() };
        progress(&backed);
        modules.push(backed);
    }
    let mut files = Vec::new();
    checksums(&copy, &copy, &mut files)?;
    let manifest = Manifest { version: 1, created_at, modules, files };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    let path = root.join("manifest.json");
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok((root, manifest))
}

/// The data directory's files but the module stores themselves (their `live/` directories, taken
/// by the store's own copy), the process lock and logs.
fn copy_configuration(root: &Path, dir: &Path, to: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "live" || name == ".mishkah.lock" || name.ends_with(".log") {
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

fn checksums(root: &Path, dir: &Path, out: &mut Vec<BackedFile>) -> Result<(), BackupError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io(dir))?.collect::<Result<_, _>>().map_err(io(dir))?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            checksums(root, &path, out)?;
            continue;
        }
        let (bytes, sha256) = sha256_of(&path)?;
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
        out.push(BackedFile { path: relative, bytes, sha256 });
    }
    Ok(())
}

/// A file's length and SHA-256, read in pieces (a module's store may be larger than memory).
fn sha256_of(path: &Path) -> Result<(u64, String), BackupError> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        context.update(&buffer[..n]);
        length += n as u64;
    }
    Ok((length, context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect()))
}

/// Makes the data directory `to` (absent or empty) from the backup at `from`, once every file's
/// checksum holds.
pub fn restore(from: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let path = from.join("manifest.json");
    let manifest: Manifest = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| BackupError::NotABackup(from.to_path_buf(), e))?;
    if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::TargetNotEmpty(to.to_path_buf()));
    }
    let data = from.join("data");
    for file in &manifest.files {
        let path = data.join(&file.path);
        if sha256_of(&path)? != (file.bytes, file.sha256.clone()) {
            return Err(BackupError::Damaged(path));
        }
    }
    for file in &manifest.files {
        let (source, out) = (data.join(&file.path), to.join(&file.path));
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(&source, &out).map_err(io(&source))?;
    }
    Ok(manifest)
}
