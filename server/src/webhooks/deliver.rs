//! Delivery: one task per webhook reads each of its branch modules' log from the webhook's durable
//! cursor and POSTs every event it wants, in order, one at a time. A failed POST (an error status,
//! a refused connection, no answer within the timeout) is tried again after an exponential backoff
//! with jitter; after the webhook's attempts the event is dead-lettered and delivery goes on. The
//! cursor moves past a page of events once each was delivered or dead-lettered, so after a crash
//! what that page had delivered is sent again (at least once; receivers drop duplicates by
//! `webhook-id`). The log is read, never the write path: a slow or dead receiver never slows a
//! write. The node delivering holds the webhook's lease, renewed before every attempt: a node that
//! lost it (it stalled longer than the lease) stops, so deliveries stay in order.

use std::sync::Arc;
use std::time::Duration;

use mishkah_core::rules::Principal;

use super::config::Webhook;
use super::state::{cursor_key, DeadLetter, Stored, LEASE_MS};
use crate::access::{Caller, View};
use crate::engine::{Engine, ModuleHandle, Opening};
use crate::storage::LoggedEvent;

/// Events read from a log at a time.
const PAGE: usize = 100;
/// How long an idle webhook waits before it looks at its logs again.
const IDLE: Duration = Duration::from_millis(200);

/// What one webhook's task needs.
pub struct Deliverer {
    pub hook: Arc<Webhook>,
    pub engine: Arc<Engine>,
    pub stored: Stored,
    pub client: reqwest::Client,
    /// This node, for the lease.
    pub node: String,
    /// The first retry's delay; each next one doubles it (at most a minute).
    pub backoff: Duration,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This task has seen the webhook's state say `started`.
    pub started: std::sync::atomic::AtomicBool,
}

impl Deliverer {
    /// Delivers until the task is aborted (the configuration changed, or the server stops).
    pub async fn run(self) {
        loop {
            let delivered = match self.claim().await {
                Ok(true) => self.round().await,
                Ok(false) => false,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.id, error = %e, "webhook state unreadable");
                    false
                }
            };
            if !delivered {
                tokio::time::sleep(IDLE).await;
            }
        }
    }

    /// Takes or renews the lease; `false` while another node holds it, or the webhook is paused.
    async fn claim(&self) -> Result<bool, crate::storage::StorageError> {
        let (stored, node) = (self.stored.clone(), self.node.clone());
        let paused = self.hook.paused;
        blocking(move || {
            // A lease with more than half its time to run is not written again (one read, not a
            // write, per delivery).
            let (current, _) = stored.read()?;
            if !current.paused
                && current.owner.as_deref() == Some(&node)
                && current.lease_until > now_ms() + LEASE_MS / 2
            {
                return Ok(!paused);
            }
            stored.update(|s| {
                let now = now_ms();
                if s.paused || paused {
                    return false;
                }
                if s.owner.as_deref().is_some_and(|o| o != node) && s.lease_until > now {
                    return false;
                }
                s.owner = Some(node.clone());
                s.lease_until = now + LEASE_MS;
                true
            })
        })
        .await
    }

    /// One pass over the webhook's branch modules; whether anything was delivered.
    async fn round(&self) -> bool {
        let mut any = false;
        for branch in self.branches().await {
            let handle = match self.engine.module_as(&branch, &self.hook.module, Opening::ExistingOnly).await {
                Ok(h) => h,
                Err(_) => continue,
            };
            match self.deliver_page(&branch, &handle).await {
                Ok(n) => any |= n > 0,
                Err(e) => tracing::warn!(webhook = %self.hook.id, %branch, error = %e, "webhook delivery"),
            }
        }
        if !self.started.load(std::sync::atomic::Ordering::Relaxed) {
            let stored = self.stored.clone();
            if blocking(move || stored.update(|s| s.started = true)).await.is_ok() {
                self.started.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        any
    }

    /// The branches the webhook names, else every branch (those created on demand too).
    async fn branches(&self) -> Vec<String> {
        match &self.hook.branches {
            Some(listed) => listed.iter().cloned().collect(),
            None => self.engine.branches().await.unwrap_or_else(|e| {
                tracing::warn!(webhook = %self.hook.id, error = %e, "webhook: the branches could not be listed");
                self.engine.data().branches.branches.keys().cloned().collect()
            }),
        }
    }

    /// Delivers the next page of `branch`'s log after the cursor; how many events it passed.
    async fn deliver_page(&self, branch: &str, handle: &Arc<ModuleHandle>) -> Result<usize, String> {
        let key = cursor_key(branch, &self.hook.module);
        let stored = self.stored.clone();
        let (state, _) = blocking(move || stored.read()).await.map_err(|e| e.to_string())?;
        let cursor = match state.cursors.get(&key) {
            Some(c) => *c,
            // A branch module that appeared after the webhook started (a new till's branch):
            // everything in it is new, its first write too.
            None if state.started => 0,
            None => {
                // A new webhook starts at the head: it gets what is committed from now on.
                let head = handle.head();
                self.advance(&key, head).await?;
                head
            }
        };
        if handle.head() <= cursor {
            return Ok(0);
        }
        self.metrics.webhook_lag(&self.hook.id, branch, handle.head() - cursor);
        let page = handle.read(move |r, _| r.logged_after(cursor, PAGE)).await.map_err(|e| e.to_string())?;
        let view =
            View::of(handle, &Caller::new(Arc::new(Principal::from_claims(self.hook.identity.clone())), "webhook"));
        let (mut passed, mut last) = (0, cursor);
        for logged in page {
            let sequence = logged.event.sequence;
            if self.hook.wants(branch, &self.hook.module, &logged.event.change.table, logged.event.change.kind) {
                self.deliver(branch, handle, &view, logged).await?;
            }
            (passed, last) = (passed + 1, sequence);
        }
        self.advance(&key, last).await?;
        self.metrics.webhook_lag(&self.hook.id, branch, handle.head().saturating_sub(last));
        Ok(passed)
    }

    /// Delivers one event, retrying; dead-letters it after the last attempt.
    async fn deliver(
        &self,
        branch: &str,
        handle: &ModuleHandle,
        view: &View,
        logged: LoggedEvent,
    ) -> Result<(), String> {
        let (event_id, sequence) = (logged.event.event_id.clone(), logged.event.sequence);
        let Some(body) = super::payload::body(&handle.schema, view, branch, &self.hook.module, logged) else {
            return Ok(());
        };
        // One message id and timestamp for every attempt: a receiver drops a retry it already has.
        let timestamp = (now_ms() / 1000) as i64;
        let headers = self.hook.signer.headers(&event_id, timestamp, &body);
        let mut last_error = String::new();
        for attempt in 1..=self.hook.attempts {
            if !self.claim().await.map_err(|e| e.to_string())? {
                return Err("another node took over the webhook, or it was paused".into());
            }
            let mut request = self.client.post(self.hook.url.clone()).body(body.clone());
            request = request.header("content-type", "application/json");
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            match request.send().await {
                Ok(r) if r.status().is_success() => {
                    self.metrics.webhook_delivered(&self.hook.id);
                    return Ok(());
                }
                Ok(r) => last_error = format!("HTTP {}", r.status().as_u16()),
                Err(e) => last_error = if e.is_timeout() { "timed out".into() } else { e.to_string() },
            }
            self.metrics.webhook_failed(&self.hook.id);
            if attempt < self.hook.attempts {
                tokio::time::sleep(self.delay(attempt)).await;
            }
        }
        let dead = DeadLetter {
            branch: branch.to_owned(),
            module: self.hook.module.clone(),
            sequence,
            event_id,
            attempts: self.hook.attempts,
            last_error,
            at: crate::clock::now_iso(),
        };
        tracing::warn!(webhook = %self.hook.id, sequence, error = %dead.last_error, "webhook event dead-lettered");
        let stored = self.stored.clone();
        let dead_letter = move |s: &mut super::state::State| {
            // Dead-lettered again after a crash before the cursor moved on: kept once.
            s.dead.retain(|d| (d.branch.as_str(), d.sequence) != (dead.branch.as_str(), dead.sequence));
            s.dead.push(dead.clone());
        };
        blocking(move || stored.update(dead_letter)).await.map_err(|e| e.to_string())
    }

    /// Exponential backoff with full jitter: a random delay up to `backoff · 2^(attempt-1)`, at
    /// least a tenth of it, capped at a minute.
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.backoff.saturating_mul(1 << (attempt - 1).min(16)).min(Duration::from_secs(60));
        let random = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
        ceiling.mul_f64(0.1 + 0.9 * random)
    }

    async fn advance(&self, key: &str, sequence: u64) -> Result<(), String> {
        let (stored, key, node) = (self.stored.clone(), key.to_owned(), self.node.clone());
        blocking(move || {
            stored.update(|s| {
                let cursor = s.cursors.entry(key.clone()).or_default();
                *cursor = (*cursor).max(sequence);
                if s.owner.as_deref() == Some(&node) {
                    s.lease_until = now_ms() + LEASE_MS;
                }
            })
        })
        .await
        .map_err(|e| e.to_string())
    }
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::storage::StorageError> + Send + 'static,
) -> Result<T, crate::storage::StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::storage::StorageError::Corrupt(format!("a webhook task failed: {e}")))?
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
