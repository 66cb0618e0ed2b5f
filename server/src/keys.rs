//! API keys for services: `mk_` and 32 random bytes, shown once when created; the data directory
//! keeps only their SHA-256 (`security/keys.json`), with a name, a role and optional branches.
//! A revoked key stays listed (who had it, when it ended) and is refused with `key-revoked`.
//!
//! The server reads the file again whenever it changes, so `mishkah keys revoke` takes effect
//! on a running server at the next request that presents the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{AuthError, Identity};

/// What every key starts with (so a bearer value is known to be a key, not a JWT).
pub const KEY_PREFIX: &str = "mk_";

/// One key as the file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Unique among keys that are not revoked; the events' actor is `key:<name>`.
    pub name: String,
    /// `@auth.role` (`admin` bypasses the rules).
    pub role: String,
    /// The branches the key may use (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branches: Option<Vec<String>>,
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// When it was created (ISO-8601).
    pub created_at: String,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl KeyRecord {
    /// The identity the key stands for.
    fn identity(&self) -> Identity {
        let sub = format!("key:{}", self.name);
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(sub.clone()));
        claims.insert("role".into(), Value::from(self.role.clone()));
        claims.insert("key".into(), Value::from(self.name.clone()));
        if let Some(branches) = &self.branches {
            claims.insert("branches".into(), json!(branches));
        }
        Identity { sub, claims }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyRecord>,
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a keys file: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("a key named `{0}` exists already (revoke it first)")]
    Exists(String),
    #[error("no key named `{0}`")]
    NotFound(String),
    #[error("a key name is 1-64 letters, digits and - _ .")]
    BadName,
    #[error("the system's random number generator failed")]
    Random,
}

/// `security/keys.json` of a data directory.
pub fn keys_path(data: &Path) -> PathBuf {
    data.join("security").join("keys.json")
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<KeyFile, KeysError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| KeysError::Invalid { path: path.to_path_buf(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyFile::default()),
        Err(source) => Err(KeysError::Io { path: path.to_path_buf(), source }),
    }
}

/// Replaces the file whole (a crash leaves the old one or the new one, never half of one),
/// readable by its owner only.
fn write(path: &Path, file: &KeyFile) -> Result<(), KeysError> {
    let io = |source| KeysError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(file).expect("keys serialize");
    std::fs::write(&tmp, text).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Creates a key and returns it (the only time it is shown).
pub fn create(data: &Path, name: &str, role: &str, branches: Option<Vec<String>>) -> Result<String, KeysError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(KeysError::BadName);
    }
    let path = keys_path(data);
    let mut file = read(&path)?;
    if file.keys.iter().any(|k| k.name == name && k.revoked_at.is_none()) {
        return Err(KeysError::Exists(name.to_owned()));
    }
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).map_err(|_| KeysError::Random)?;
    let key = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    file.keys.push(KeyRecord {
        name: name.to_owned(),
        role: role.to_owned(),
        branches,
        sha256: sha256_hex(&key),
        created_at: crate::clock::now_iso(),
        revoked_at: None,
    });
    write(&path, &file)?;
    Ok(key)
}

/// Every key, revoked ones included.
pub fn list(data: &Path) -> Result<Vec<KeyRecord>, KeysError> {
    Ok(read(&keys_path(data))?.keys)
}

/// Revokes the key named `name`.
pub fn revoke(data: &Path, name: &str) -> Result<(), KeysError> {
    let path = keys_path(data);
    let mut file = read(&path)?;
    let key = file
        .keys
        .iter_mut()
        .find(|k| k.name == name && k.revoked_at.is_none())
        .ok_or_else(|| KeysError::NotFound(name.to_owned()))?;
    key.revoked_at = Some(crate::clock::now_iso());
    write(&path, &file)
}

/// The keys a running server accepts: the file, read again when it changes.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

#[derive(Debug, Default)]
struct Loaded {
    /// The file's modification time and length when read.
    modified: Option<(SystemTime, u64)>,
    by_hash: HashMap<String, KeyRecord>,
}

impl KeyStore {
    /// The keys of the data directory `data`.
    pub fn open(data: &Path) -> KeyStore {
        KeyStore { path: keys_path(data), loaded: Mutex::new(Loaded::default()) }
    }

    /// The identity a presented key stands for.
    pub fn verify(&self, presented: &str) -> Result<Identity, AuthError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let modified = std::fs::metadata(&self.path).and_then(|m| Ok((m.modified()?, m.len()))).ok();
        if modified != loaded.modified || (modified.is_none() && !loaded.by_hash.is_empty()) {
            match read(&self.path) {
                Ok(file) => {
                    loaded.by_hash = file.keys.into_iter().map(|k| (k.sha256.clone(), k)).collect();
                    loaded.modified = modified;
                }
                // A file that cannot be read now accepts no key (and says so), rather than old ones.
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the API keys");
                    loaded.by_hash.clear();
                    loaded.modified = None;
                }
            }
        }
        match loaded.by_hash.get(&sha256_hex(presented.trim())) {
            Some(key) if key.revoked_at.is_some() => Err(AuthError::Revoked),
            Some(key) => Ok(key.identity()),
            None => Err(AuthError::Invalid("unknown API key".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_shown_once_stored_as_a_hash_and_refused_once_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let key = create(dir.path(), "printer", "service", Some(vec!["demo".into()])).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() > 40);
        let stored = std::fs::read_to_string(keys_path(dir.path())).unwrap();
        assert!(!stored.contains(&key[3..]), "only the hash is stored");
        let store = KeyStore::open(dir.path());
        let id = store.verify(&key).unwrap();
        assert_eq!((id.sub.as_str(), id.claims["role"].as_str()), ("key:printer", Some("service")));
        assert_eq!(id.claims["branches"], json!(["demo"]));
        assert_eq!(store.verify("mk_guess").unwrap_err().code(), "invalid-token");
        assert!(matches!(create(dir.path(), "printer", "x", None), Err(KeysError::Exists(_))));
        assert!(matches!(create(dir.path(), "no spaces", "x", None), Err(KeysError::BadName)));

        // Revoked by another process while this one runs: the next use sees it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        revoke(dir.path(), "printer").unwrap();
        assert_eq!(store.verify(&key).unwrap_err(), AuthError::Revoked);
        assert!(list(dir.path()).unwrap()[0].revoked_at.is_some());
        assert!(matches!(revoke(dir.path(), "printer"), Err(KeysError::NotFound(_))));
        let again = create(dir.path(), "printer", "service", None).unwrap();
        assert!(store.verify(&again).is_ok(), "a new key may take a revoked one's name");
    }
}
