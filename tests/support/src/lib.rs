//! Where tests find real data.
//!
//! Real data from the system we replace lives outside the repo, in `../shared/fixtures` beside the
//! checkout (override with `MISHKAH_FIXTURES=/path/to/fixtures`). It is never copied in. An outside
//! contributor without it runs the same tests on the repo's own `data/`, which covers the same three
//! schema formats; under `CI=true` a missing fixture directory is a failure, so CI can never pass by
//! silently testing less.

pub mod fuzz;
pub mod postgres;

use std::path::{Path, PathBuf};

/// A data directory to test against.
#[derive(Debug, Clone)]
pub struct DataSource {
    /// The data directory (holds `modules.json`, `branches.config.json`...).
    pub dir: PathBuf,
    /// Whether this is the real fixture data (`false`: the repo's own `data/`).
    pub real: bool,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repo root exists")
}

/// The repo's own default data directory.
pub fn own_data_dir() -> PathBuf {
    repo_root().join("data")
}

/// The real fixture data directory, else the repo's own `data/` (a panic under `CI=true`).
pub fn data_source() -> DataSource {
    let fixtures = std::env::var_os("MISHKAH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fixtures"));
    let dir = fixtures.join("mishkah/data");
    if dir.join("modules.json").is_file() {
        return DataSource { dir, real: true };
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the fixtures are missing at {} (set MISHKAH_FIXTURES)", dir.display());
    }
    eprintln!("note: fixtures not found at {}; testing against the repo's own data/", dir.display());
    DataSource { dir: own_data_dir(), real: false }
}

/// Every `*.json` file under `dir`, sorted.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Copies a directory tree (for tests that let a server write into a data directory).
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
