//! What a webhook's deliveries have reached, kept in the store's shared documents
//! (`webhooks/<id>.json`: a file of the data directory on SQLite, `mishkah.documents` on
//! PostgreSQL, so every node reads the same): per branch module, the last sequence delivered; the
//! dead letters; whether it is paused; and which node delivers it now (a lease, renewed while it
//! delivers, so each event goes out once per deployment, not once per node).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::storage::{SharedDocs, StorageError};

/// How long a node's claim on a webhook lasts unless renewed.
pub const LEASE_MS: u64 = 10_000;

/// Dead letters kept per webhook (the oldest go first).
const MAX_DEAD: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// `"<branch>/<module>"` → the last sequence delivered (or given up on).
    #[serde(default)]
    pub cursors: BTreeMap<String, u64>,
    #[serde(default)]
    pub dead: Vec<DeadLetter>,
    #[serde(default)]
    pub paused: bool,
    /// The node delivering it, until `lease_until` (ms since the epoch).
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub lease_until: u64,
    /// Its first round is done: every branch module then holding a log has a cursor (at its
    /// head: a new webhook gets what is committed from then on), so a module without one is
    /// younger than the webhook and each of its events is delivered, from its first.
    #[serde(default)]
    pub started: bool,
}

/// An event that was not delivered after every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub branch: String,
    pub module: String,
    pub sequence: u64,
    pub event_id: String,
    pub attempts: u32,
    pub last_error: String,
    /// When it was given up on (RFC 3339).
    pub at: String,
}

/// One webhook's state document.
#[derive(Clone)]
pub struct Stored {
    docs: Arc<dyn SharedDocs>,
    name: String,
}

impl Stored {
    pub fn new(docs: Arc<dyn SharedDocs>, webhook: &str) -> Stored {
        Stored { docs, name: format!("webhooks/{webhook}.json") }
    }

    /// The state as stored (default when never written). Blocks.
    pub fn read(&self) -> Result<(State, Option<u64>), StorageError> {
        match self.docs.get(&self.name)? {
            None => Ok((State::default(), None)),
            Some((version, text)) => {
                let state =
                    serde_json::from_str(&text).map_err(|e| StorageError::Corrupt(format!("{}: {e}", self.name)))?;
                Ok((state, Some(version)))
            }
        }
    }

    /// Changes the state with `f`, retrying when another writer came first; returns what `f`
    /// returned on the state that was stored. Blocks.
    pub fn update<T>(&self, mut f: impl FnMut(&mut State) -> T) -> Result<T, StorageError> {
        loop {
            let (mut state, version) = self.read()?;
            let out = f(&mut state);
            if state.dead.len() > MAX_DEAD {
                let extra = state.dead.len() - MAX_DEAD;
                state.dead.drain(..extra);
            }
            let text = serde_json::to_string(&state).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            if self.docs.put(&self.name, &text, version)? {
                return Ok(out);
            }
        }
    }
}

/// `"<branch>/<module>"`.
pub fn cursor_key(branch: &str, module: &str) -> String {
    format!("{branch}/{module}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_what_was_stored_and_bound_the_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let docs: Arc<dyn SharedDocs> = Arc::new(crate::storage::DirDocs::new(dir.path()));
        let stored = Stored::new(docs, "kitchen");
        assert_eq!(stored.read().unwrap().0, State::default());
        stored.update(|s| s.cursors.insert(cursor_key("dar", "pos"), 7)).unwrap();
        for n in 0..(MAX_DEAD + 5) as u64 {
            stored
                .update(|s| {
                    s.dead.push(DeadLetter {
                        branch: "dar".into(),
                        module: "pos".into(),
                        sequence: n,
                        event_id: format!("evt-{n}"),
                        attempts: 3,
                        last_error: "503".into(),
                        at: "now".into(),
                    })
                })
                .unwrap();
        }
        let (state, _) = stored.read().unwrap();
        assert_eq!(state.cursors["dar/pos"], 7);
        assert_eq!(state.dead.len(), MAX_DEAD);
        assert_eq!(state.dead[0].sequence, 5, "the oldest went first");
    }
}
