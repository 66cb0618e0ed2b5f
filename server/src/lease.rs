//! A lease in the deployment's shared documents: one node at a time does a job every node could
//! do (shipping the logs to a backup), and another takes over when the holder stops renewing it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::storage::{SharedDocs, StorageError};

/// A named lease, as one node asks for it.
#[derive(Debug, Clone)]
pub struct Lease {
    docs: Arc<dyn SharedDocs>,
    name: String,
    node: String,
    ttl_ms: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Held {
    owner: String,
    until_ms: u64,
}

fn now_ms() -> u64 {
    crate::clock::now().0.max(0) as u64
}

impl Lease {
    /// The lease kept in the document `name`, asked for by `node`, for `ttl` at a time.
    pub fn new(docs: Arc<dyn SharedDocs>, name: &str, node: &str, ttl: std::time::Duration) -> Lease {
        Lease { docs, name: name.to_owned(), node: node.to_owned(), ttl_ms: ttl.as_millis().max(1) as u64 }
    }

    /// Whether this node holds the lease now: taken when free or expired, renewed when more than
    /// half of it has run (one read, no write, otherwise). Blocks.
    pub fn hold(&self) -> Result<bool, StorageError> {
        let current = self.docs.get(&self.name)?;
        let (version, held) = match &current {
            Some((version, text)) => (Some(*version), serde_json::from_str::<Held>(text).ok()),
            None => (None, None),
        };
        let now = now_ms();
        match &held {
            Some(h) if h.owner == self.node && h.until_ms > now + self.ttl_ms / 2 => return Ok(true),
            Some(h) if h.owner != self.node && h.until_ms > now => return Ok(false),
            _ => {}
        }
        let text = serde_json::to_string(&Held { owner: self.node.clone(), until_ms: now + self.ttl_ms })
            .map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.docs.put(&self.name, &text, version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_holds_it_until_it_stops_renewing() {
        let dir = tempfile::tempdir().unwrap();
        let docs: Arc<dyn SharedDocs> = Arc::new(crate::storage::DirDocs::new(dir.path()));
        let ttl = std::time::Duration::from_millis(300);
        let (a, b) = (Lease::new(docs.clone(), "lease.json", "a", ttl), Lease::new(docs, "lease.json", "b", ttl));
        assert!(a.hold().unwrap());
        assert!(!b.hold().unwrap(), "held by a");
        assert!(a.hold().unwrap(), "a renews");
        std::thread::sleep(std::time::Duration::from_millis(350));
        assert!(b.hold().unwrap(), "a stopped renewing: b takes over");
        assert!(!a.hold().unwrap());
    }
}
