//! Fan-out: every committed change reaches every subscriber of its branch exactly once.
//!
//! Writers hand committed events to one publisher task ([`Hub::run_publisher`]) right after
//! commit. It serializes each `server:event` frame once and shares the same [`Frame`] with every
//! subscriber. Each subscriber has a bounded queue; one that cannot keep up is dropped from live
//! fan-out and flagged `lagged`, so its session tells the client to resync instead of letting
//! server memory grow.
//!
//! Live queries ([`live`]) read the same stream, after the branch-wide fan-out of each change.

pub mod live;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mishkah_core::sync::ChangeEvent;
use mishkah_core::wire::{CommitFrame, CommitSite, ServerFrame};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// A committed change on its way to subscribers.
#[derive(Debug, Clone)]
pub struct Published {
    /// Branch.
    pub branch: String,
    /// Module.
    pub module: String,
    /// The event.
    pub event: Arc<ChangeEvent>,
    /// Key fields.
    pub primary_key: Map<String, Value>,
    /// Source of the write.
    pub source: &'static str,
    /// The writer's meta.
    pub client_meta: Value,
    /// The module's schema: what clients may see of the event ([`crate::render`]).
    pub schema: Arc<mishkah_core::Schema>,
}

/// A serialized frame: reference-counted, so one serialization is shared by every recipient.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// Frames queued per subscriber before it counts as lagging.
pub const SUBSCRIBER_QUEUE: usize = 4096;

struct Subscriber {
    tx: mpsc::Sender<Frame>,
    lagged: Arc<AtomicBool>,
}

/// Subscribers per branch.
pub struct Hub {
    server_id: String,
    branches: Mutex<HashMap<String, HashMap<u64, Subscriber>>>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    live: Arc<live::LiveHub>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Frames for this subscriber.
    pub rx: mpsc::Receiver<Frame>,
    /// Set when the hub dropped this subscriber for lagging.
    pub lagged: Arc<AtomicBool>,
    id: u64,
    branch: String,
    hub: Arc<Hub>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.branch, self.id);
    }
}

impl Hub {
    /// A hub for this server.
    pub fn new(server_id: String, metrics: Arc<Metrics>) -> Arc<Hub> {
        let live = live::LiveHub::new(metrics.clone());
        Arc::new(Hub { server_id, branches: Mutex::new(HashMap::new()), next_id: AtomicU64::new(1), metrics, live })
    }

    /// The live queries.
    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    /// This server's id.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Subscribes to every event of `branch`.
    pub fn subscribe(self: &Arc<Self>, branch: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        branches.entry(branch.to_owned()).or_default().insert(id, Subscriber { tx, lagged: lagged.clone() });
        Subscription { rx, lagged, id, branch: branch.to_owned(), hub: self.clone() }
    }

    fn unsubscribe(&self, branch: &str, id: u64) {
        let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(subs) = branches.get_mut(branch) {
            subs.remove(&id);
            if subs.is_empty() {
                branches.remove(branch);
            }
        }
    }

    /// Number of subscribers of a branch.
    pub fn subscriber_count(&self, branch: &str) -> usize {
        self.branches.lock().unwrap_or_else(|p| p.into_inner()).get(branch).map_or(0, HashMap::len)
    }

    /// Sends one frame to every subscriber of `branch`; drops the ones whose queue is full.
    pub fn broadcast(&self, branch: &str, frame: Frame) {
        let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = branches.get_mut(branch) else {
            return;
        };
        subs.retain(|_, sub| match sub.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                sub.lagged.store(true, Ordering::Release);
                self.metrics.lagged_clients.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }

    /// The `server:event` frame of a committed change as clients see it, serialized once; `None`
    /// for a change no client may see (a locked table).
    pub fn event_frame(&self, p: &Published) -> Option<Frame> {
        let site = CommitSite { branch_id: &p.branch, module_id: &p.module, server_id: &self.server_id };
        let seen = crate::render::event(&p.schema, &p.event)?;
        let body = CommitFrame::from_event(&seen, site, p.source, p.client_meta.clone(), p.primary_key.clone(), true)
            .into_event();
        let text = serde_json::to_string(&ServerFrame::Event(body)).expect("frames serialize");
        Some(Frame::from(text))
    }

    /// Publishes committed events in commit order until every writer is gone.
    pub async fn run_publisher(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Published>) {
        while let Some(p) = rx.recv().await {
            if self.subscriber_count(&p.branch) > 0 {
                if let Some(frame) = self.event_frame(&p) {
                    self.broadcast(&p.branch, frame);
                }
            }
            self.live.publish(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_cannot_keep_up_is_dropped_and_flagged() {
        let hub = Hub::new("t".into(), Arc::new(Metrics::default()));
        let mut slow = hub.subscribe("b");
        let mut fast = hub.subscribe("b");
        let frame = Frame::from("{}");
        for _ in 0..SUBSCRIBER_QUEUE {
            hub.broadcast("b", frame.clone());
            fast.rx.recv().await.unwrap();
        }
        assert!(!slow.lagged.load(Ordering::Acquire));
        hub.broadcast("b", frame.clone());
        assert!(slow.lagged.load(Ordering::Acquire), "the full queue got the subscriber dropped");
        assert_eq!(hub.subscriber_count("b"), 1);
        // Its queue still drains, then ends: the session turns that into a resync directive.
        let mut drained = 0;
        while slow.rx.recv().await.is_some() {
            drained += 1;
        }
        assert_eq!(drained, SUBSCRIBER_QUEUE);
        assert!(fast.rx.recv().await.is_some());
    }
}
