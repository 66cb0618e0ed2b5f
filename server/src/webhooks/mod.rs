//! Webhooks (`data/webhooks.json`): every committed event a webhook names is POSTed to its URL as
//! JSON, signed by the Standard Webhooks specification, so a receiver verifies it with any of
//! that specification's libraries.
//!
//! - [`config`]: the webhooks as configured, checked (each refusal names the entry and field).
//! - [`signing`]: the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
//! - [`payload`]: what a delivery says of one logged event, its row rendered as the webhook's
//!   identity may see it (through the one renderer).
//! - [`state`]: cursors, dead letters, pause and the delivering node's lease, durable.
//! - [`deliver`]: one task per webhook, reading the logs from its cursor.
//!
//! [`Webhooks`] runs them: it reads the file at start and again whenever it changes (a file
//! that does not check out is logged and the running webhooks stay as they were).

pub mod config;
pub mod deliver;
pub mod payload;
pub mod signing;
pub mod state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::Engine;
use crate::storage::SharedDocs;

/// How often the file is looked at for changes.
const RELOAD: Duration = Duration::from_secs(1);

/// How deliveries wait: before a retry, and for a receiver's answer.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The first retry's delay; each next one up to twice as long, at most a minute.
    pub backoff: Duration,
    pub timeout: Duration,
}

/// The running webhooks.
pub struct Webhooks {
    engine: Arc<Engine>,
    docs: Arc<dyn SharedDocs>,
    metrics: Arc<crate::metrics::Metrics>,
    node: String,
    path: PathBuf,
    timing: Timing,
    client: reqwest::Client,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    hooks: Vec<Arc<config::Webhook>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The file's modification time and length when last read.
    seen: Option<(std::time::SystemTime, u64)>,
}

impl Webhooks {
    /// Starts the webhooks of `engine`'s data directory, and watches the file.
    pub fn start(
        engine: Arc<Engine>,
        docs: Arc<dyn SharedDocs>,
        metrics: Arc<crate::metrics::Metrics>,
        node: String,
        timing: Timing,
    ) -> Arc<Webhooks> {
        let path = engine.data().root().join("webhooks.json");
        let client = reqwest::Client::builder().timeout(timing.timeout).build().unwrap_or_default();
        let this = Arc::new(Webhooks {
            engine,
            docs,
            metrics,
            node,
            path,
            timing,
            client,
            running: Mutex::new(Running::default()),
        });
        let watcher = this.clone();
        tokio::spawn(async move {
            loop {
                watcher.reload();
                tokio::time::sleep(RELOAD).await;
            }
        });
        this
    }

    /// The webhooks configured now.
    pub fn list(&self) -> Vec<Arc<config::Webhook>> {
        self.lock().hooks.clone()
    }

    /// The last sequence of `branch`'s `module` every webhook of it has passed (`None`: no
    /// webhook reads it): compaction keeps what comes after.
    pub async fn needed_after(&self, branch: &str, module: &str) -> Result<Option<u64>, crate::storage::StorageError> {
        let mut oldest: Option<u64> = None;
        for hook in self.list().into_iter().filter(|h| h.module == module) {
            if hook.branches.as_ref().is_some_and(|b| !b.contains(branch)) {
                continue;
            }
            let stored = self.stored(&hook.id);
            let key = state::cursor_key(branch, module);
            let read = tokio::task::spawn_blocking(move || stored.read()).await;
            let (delivered, _) =
                read.map_err(|e| crate::storage::StorageError::Corrupt(format!("a webhook task failed: {e}")))??;
            // A webhook that has not started on this branch yet starts at the head: it needs nothing older.
            if let Some(cursor) = delivered.cursors.get(&key) {
                oldest = Some(oldest.map_or(*cursor, |o| o.min(*cursor)));
            }
        }
        Ok(oldest)
    }

    /// A webhook's durable state.
    pub fn stored(&self, id: &str) -> state::Stored {
        state::Stored::new(self.docs.clone(), id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the file again if it changed, and restarts the tasks on what it now says.
    fn reload(&self) {
        let seen = std::fs::metadata(&self.path).ok().map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()));
        let mut running = self.lock();
        if seen == running.seen {
            return;
        }
        running.seen = seen;
        let hooks = match seen {
            None => Vec::new(),
            Some(_) => match std::fs::read_to_string(&self.path)
                .map_err(|e| e.to_string())
                .and_then(|text| config::parse(&text).map_err(|e| e.to_string()))
            {
                Ok(hooks) => hooks,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "webhooks not reloaded");
                    return;
                }
            },
        };
        for task in running.tasks.drain(..) {
            task.abort();
        }
        running.hooks = hooks.into_iter().map(Arc::new).collect();
        tracing::info!(webhooks = running.hooks.len(), "webhooks loaded");
        let tasks: Vec<_> = running
            .hooks
            .iter()
            .map(|hook| {
                let deliverer = deliver::Deliverer {
                    hook: hook.clone(),
                    engine: self.engine.clone(),
                    stored: self.stored(&hook.id),
                    client: self.client.clone(),
                    node: self.node.clone(),
                    backoff: self.timing.backoff,
                    metrics: self.metrics.clone(),
                    started: Default::default(),
                };
                tokio::spawn(deliverer.run())
            })
            .collect();
        running.tasks = tasks;
    }
}
