//! API keys for services: `mk_` and 32 random bytes, shown once when created; only their SHA-256
//! is kept (`security/keys.json` of the data directory, or of the shared store when nodes share
//! one), with a name, a role and optional branches. A revoked key stays listed (who had it,
//! when it ended) and is refused with `key-revoked`.
//!
//! A server reads the keys again whenever they change, so `mishkah keys revoke` takes effect on
//! a running server at the next request that presents the key (on every node of a shared store
//! within [`SHARED_REFRESH`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{AuthError, Identity};
use crate::storage::{SharedDocs, StorageError};

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
    #[error("cannot read or write the keys: {0}")]
    Store(#[from] StorageError),
    #[error("{doc} is not a keys file: {message}")]
    Invalid { doc: String, message: String },
    #[error("the keys changed under every attempt to write them: try again")]
    Busy,
    #[error("a key named `{0}` exists already (revoke it first)")]
    Exists(String),
    #[error("no key named `{0}`")]
    NotFound(String),
    #[error("a key name is 1-64 letters, digits and - _ .")]
    BadName,
    #[error("the system's random number generator failed")]
    Random,
}

impl KeysError {
    /// `key-exists`, `key-not-found`, `invalid-key-name`, or `keys-unavailable` (the store).
    pub fn code(&self) -> &'static str {
        match self {
            KeysError::Exists(_) => "key-exists",
            KeysError::NotFound(_) => "key-not-found",
            KeysError::BadName => "invalid-key-name",
            KeysError::Store(_) | KeysError::Invalid { .. } | KeysError::Busy | KeysError::Random => "keys-unavailable",
        }
    }
}

/// The document the keys are kept in: `security/keys.json` of the data directory, or of the
/// shared store when nodes share one (`--store postgres://…`), so every node accepts the same keys.
pub const KEYS_DOC: &str = "security/keys.json";

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn read(docs: &dyn SharedDocs) -> Result<(Option<u64>, KeyFile), KeysError> {
    match docs.get(KEYS_DOC)? {
        None => Ok((None, KeyFile::default())),
        Some((version, text)) => serde_json::from_str(&text)
            .map(|file| (Some(version), file))
            .map_err(|e| KeysError::Invalid { doc: format!("{docs:?}: {KEYS_DOC}"), message: e.to_string() }),
    }
}

/// Reads the keys, changes them with `change`, and writes them back unless another writer came
/// in between (then it starts again from what that writer left).
fn update<T>(
    docs: &dyn SharedDocs,
    mut change: impl FnMut(&mut KeyFile) -> Result<T, KeysError>,
) -> Result<T, KeysError> {
    for _ in 0..8 {
        let (version, mut file) = read(docs)?;
        let out = change(&mut file)?;
        let text = serde_json::to_string_pretty(&file).expect("keys serialize");
        if docs.put(KEYS_DOC, &text, version)? {
            return Ok(out);
        }
    }
    Err(KeysError::Busy)
}

/// Creates a key and returns it (the only time it is shown).
pub fn create(
    docs: &dyn SharedDocs,
    name: &str,
    role: &str,
    branches: Option<Vec<String>>,
) -> Result<String, KeysError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        return Err(KeysError::BadName);
    }
    let mut secret = [0u8; 32];
    SystemRandom::new().fill(&mut secret).map_err(|_| KeysError::Random)?;
    let key = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    update(docs, |file| {
        if file.keys.iter().any(|k| k.name == name && k.revoked_at.is_none()) {
            return Err(KeysError::Exists(name.to_owned()));
        }
        file.keys.push(KeyRecord {
            name: name.to_owned(),
            role: role.to_owned(),
            branches: branches.clone(),
            sha256: sha256_hex(&key),
            created_at: crate::clock::now_iso(),
            revoked_at: None,
        });
        Ok(())
    })?;
    Ok(key)
}

/// Every key, revoked ones included.
pub fn list(docs: &dyn SharedDocs) -> Result<Vec<KeyRecord>, KeysError> {
    Ok(read(docs)?.1.keys)
}

/// Revokes the key named `name`.
pub fn revoke(docs: &dyn SharedDocs, name: &str) -> Result<(), KeysError> {
    update(docs, |file| {
        let key = file
            .keys
            .iter_mut()
            .find(|k| k.name == name && k.revoked_at.is_none())
            .ok_or_else(|| KeysError::NotFound(name.to_owned()))?;
        key.revoked_at = Some(crate::clock::now_iso());
        Ok(())
    })
}

/// How often a server asks a shared store whether the keys changed: a key revoked on one node
/// is refused by every node within this.
pub const SHARED_REFRESH: Duration = Duration::from_secs(1);

/// The keys a running server accepts. Files are checked at every use (a `stat`); a shared
/// store is asked by a thread of its own every [`SHARED_REFRESH`] (a request never waits on it).
#[derive(Debug)]
pub struct KeyStore {
    docs: Arc<dyn SharedDocs>,
    loaded: Arc<Mutex<Loaded>>,
}

#[derive(Debug, Default)]
struct Loaded {
    version: Option<u64>,
    by_hash: HashMap<String, KeyRecord>,
}

impl Loaded {
    /// Reads the keys again if their version changed. A document that cannot be read accepts
    /// no key (and says so), rather than old ones.
    fn refresh(loaded: &Mutex<Loaded>, docs: &dyn SharedDocs) {
        let version = match docs.version(KEYS_DOC) {
            Ok(version) => version,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the API keys");
                return Loaded::forget(loaded);
            }
        };
        if version == lock(loaded).version {
            return;
        }
        match read(docs) {
            Ok((version, file)) => {
                let mut loaded = lock(loaded);
                loaded.by_hash = file.keys.into_iter().map(|k| (k.sha256.clone(), k)).collect();
                loaded.version = version;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the API keys");
                Loaded::forget(loaded);
            }
        }
    }

    fn forget(loaded: &Mutex<Loaded>) {
        let mut loaded = lock(loaded);
        loaded.by_hash.clear();
        loaded.version = None;
    }
}

fn lock(loaded: &Mutex<Loaded>) -> std::sync::MutexGuard<'_, Loaded> {
    loaded.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyStore {
    /// The keys kept in `docs`, read once now. Blocks (a shared store is read on a thread of its
    /// own: its client must not run on an async runtime's thread).
    pub fn open(docs: Arc<dyn SharedDocs>) -> KeyStore {
        let loaded = Arc::new(Mutex::new(Loaded::default()));
        if docs.remote() {
            let (first, read) = std::sync::mpsc::channel();
            let (weak, shared) = (Arc::downgrade(&loaded), docs.clone());
            let spawned = std::thread::Builder::new().name("keys-refresh".into()).spawn(move || {
                while let Some(loaded) = weak.upgrade() {
                    Loaded::refresh(&loaded, &*shared);
                    let _ = first.send(());
                    drop(loaded);
                    std::thread::sleep(SHARED_REFRESH);
                }
            });
            if spawned.is_ok() {
                let _ = read.recv();
            }
        } else {
            Loaded::refresh(&loaded, &*docs);
        }
        KeyStore { docs, loaded }
    }

    /// Whether any key is kept (so `--auth required` can verify something).
    pub fn any(&self) -> bool {
        !lock(&self.loaded).by_hash.is_empty()
    }

    /// The identity a presented key stands for.
    pub fn verify(&self, presented: &str) -> Result<Identity, AuthError> {
        if !self.docs.remote() {
            Loaded::refresh(&self.loaded, &*self.docs);
        }
        match lock(&self.loaded).by_hash.get(&sha256_hex(presented.trim())) {
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
        let docs: Arc<dyn SharedDocs> = Arc::new(crate::storage::DirDocs::new(dir.path()));
        let key = create(&*docs, "printer", "service", Some(vec!["demo".into()])).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() > 40);
        let stored = std::fs::read_to_string(dir.path().join(KEYS_DOC)).unwrap();
        assert!(!stored.contains(&key[3..]), "only the hash is stored");
        let store = KeyStore::open(docs.clone());
        assert!(store.any());
        let id = store.verify(&key).unwrap();
        assert_eq!((id.sub.as_str(), id.claims["role"].as_str()), ("key:printer", Some("service")));
        assert_eq!(id.claims["branches"], json!(["demo"]));
        assert_eq!(store.verify("mk_guess").unwrap_err().code(), "invalid-token");
        assert!(matches!(create(&*docs, "printer", "x", None), Err(KeysError::Exists(_))));
        assert!(matches!(create(&*docs, "no spaces", "x", None), Err(KeysError::BadName)));

        // Revoked by another process while this one runs: the next use sees it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let other_process = crate::storage::DirDocs::new(dir.path());
        revoke(&other_process, "printer").unwrap();
        assert_eq!(store.verify(&key).unwrap_err(), AuthError::Revoked);
        assert!(list(&*docs).unwrap()[0].revoked_at.is_some());
        assert!(matches!(revoke(&*docs, "printer"), Err(KeysError::NotFound(_))));
        let again = create(&*docs, "printer", "service", None).unwrap();
        assert!(store.verify(&again).is_ok(), "a new key may take a revoked one's name");
    }
}
