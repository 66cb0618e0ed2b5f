//! Small documents every node of a deployment must read alike (the API keys): where a backend
//! shares its rows between nodes, it shares these too; an embedded backend keeps them as files of
//! the data directory.

use std::path::{Path, PathBuf};

use crate::StorageError;

/// Named text documents with a version, written whole and compared-and-swapped.
pub trait SharedDocs: Send + Sync + std::fmt::Debug {
    /// The document and its version (`None`: never written). Blocks.
    fn get(&self, name: &str) -> Result<Option<(u64, String)>, StorageError>;
    /// The version alone: whether a copy read earlier is still current. Blocks.
    fn version(&self, name: &str) -> Result<Option<u64>, StorageError>;
    /// Replaces the document if it is still at `expected` (`None`: absent); `false` when another
    /// writer came first (read it again and retry). Blocks.
    fn put(&self, name: &str, text: &str, expected: Option<u64>) -> Result<bool, StorageError>;
    /// Whether another process may change a document between two reads of this one without
    /// touching the local disk (a refresher must then ask the store, not the file system).
    fn remote(&self) -> bool {
        false
    }
}

/// Documents as files under a directory (`name` is a relative path such as
/// `security/keys.json`). The version is the file's modification time and length: another
/// process's write (`mishkah keys revoke` beside a running server) is seen at the next read.
#[derive(Debug, Clone)]
pub struct DirDocs {
    root: PathBuf,
}

impl DirDocs {
    pub fn new(root: &Path) -> DirDocs {
        DirDocs { root: root.to_path_buf() }
    }

    /// Where the document `name` is kept.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn file_version(meta: &std::fs::Metadata) -> u64 {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    // Never 0, so that a version is never mistaken for "absent" by a caller that maps it.
    nanos.wrapping_mul(31).wrapping_add(meta.len()) | 1
}

impl SharedDocs for DirDocs {
    fn get(&self, name: &str) -> Result<Option<(u64, String)>, StorageError> {
        let path = self.path(name);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::Io(e)),
        };
        let text = std::fs::read_to_string(&path).map_err(StorageError::Io)?;
        Ok(Some((file_version(&meta), text)))
    }

    fn version(&self, name: &str) -> Result<Option<u64>, StorageError> {
        match std::fs::metadata(self.path(name)) {
            Ok(meta) => Ok(Some(file_version(&meta))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::Io(e)),
        }
    }

    /// Replaces the file whole (a crash leaves the old one or the new one, never half of one),
    /// readable by its owner only.
    fn put(&self, name: &str, text: &str, expected: Option<u64>) -> Result<bool, StorageError> {
        if self.version(name)? != expected {
            return Ok(false);
        }
        let path = self.path(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StorageError::Io)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(StorageError::Io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(StorageError::Io)?;
        }
        std::fs::rename(&tmp, &path).map_err(StorageError::Io)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_only_from_the_version_it_was_read_at() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let docs = DirDocs::new(dir.path());
        assert_eq!(docs.get("a/b.json").expect("get"), None);
        assert!(docs.put("a/b.json", "one", None).expect("put"));
        let (v1, text) = docs.get("a/b.json").expect("get").expect("written");
        assert_eq!(text, "one");
        assert!(!docs.put("a/b.json", "lost", None).expect("put"), "it exists: not from absent");
        assert!(docs.put("a/b.json", "two!", Some(v1)).expect("put"));
        assert!(!docs.put("a/b.json", "stale", Some(v1)).expect("put"), "from a version since replaced");
        assert_eq!(docs.get("a/b.json").expect("get").map(|(_, t)| t).as_deref(), Some("two!"));
    }
}
