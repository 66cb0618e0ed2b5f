//! Fan-out: every committed change reaches every subscriber of its branch that may see it,
//! exactly once.
//!
//! Writers hand committed events to one publisher task ([`Hub::run_publisher`]) right after
//! commit. It serializes each `server:event` frame once and shares the same [`Frame`] with every
//! subscriber. Each subscriber has a bounded queue; one that cannot keep up is dropped from live
//! fan-out and flagged `lagged`, so its session tells the client to resync instead of letting
//! server memory grow.
//!
//! With security rules, each subscriber reads through its table's `list` rule (`scopes.rs`): a
//! change reaches it if the rule admits the row after the write; if the rule admitted the row
//! before and not after, it gets a removal (the event's delete frame) instead. A rule is bound to
//! each subscriber once per table and interned, so subscribers whose rules bind alike share one
//! verdict per change, and at most two frames (the event, the removal) are serialized per change.
//!
//! Live queries ([`live`]) read the same stream, after the branch-wide fan-out of each change.

pub mod live;
mod scopes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mishkah_core::sync::ChangeEvent;
use mishkah_core::wire::{CommitFrame, CommitSite, ServerFrame};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use mishkah_core::rules::Principal;

/// A committed change on its way to subscribers.
#[derive(Debug, Clone)]
pub struct Published {
    pub branch: String,
    pub module: String,
    pub event: Arc<ChangeEvent>,
    /// Key fields.
    pub primary_key: Map<String, Value>,
    /// Source of the write.
    pub source: &'static str,
    /// The writer's meta.
    pub client_meta: Value,
    /// The module's schema: what clients may see of the event ([`crate::render`]).
    pub schema: Arc<mishkah_core::Schema>,
    /// The security rules: which subscribers may see the row.
    pub access: Arc<mishkah_core::rules::RuleSet>,
    /// The row before the write (none for an insert).
    pub previous: Option<Arc<mishkah_core::Row>>,
    /// The last change of its transaction (a batch's changes are delivered without a frame
    /// boundary between them).
    pub txn_end: bool,
}

/// What a subscriber's queue holds: a serialized frame (for a compact subscriber, one
/// [`mishkah_core::wire::CompactChange`]) and whether it ends its transaction. One pointer, made
/// once per change and shared by every subscriber it goes to: a queue's blocks hold 32 of them,
/// allocated up front, and every idle connection has one.
#[derive(Debug, Clone)]
pub struct Delivery(Arc<Queued>);

#[derive(Debug)]
struct Queued {
    frame: Frame,
    txn_end: bool,
}

impl Delivery {
    fn new(frame: Frame, txn_end: bool) -> Delivery {
        Delivery(Arc::new(Queued { frame, txn_end }))
    }

    /// The frame's text.
    pub fn as_str(&self) -> &str {
        self.0.frame.as_str()
    }

    /// The frame, to send as it is.
    pub fn frame(&self) -> Frame {
        self.0.frame.clone()
    }

    /// The last change of its transaction.
    pub fn txn_end(&self) -> bool {
        self.0.txn_end
    }
}

/// A serialized frame: reference-counted, so one serialization is shared by every recipient.
pub type Frame = axum::extract::ws::Utf8Bytes;

/// Frames queued per subscriber before it counts as lagging.
pub const SUBSCRIBER_QUEUE: usize = 4096;

struct Subscriber {
    tx: mpsc::Sender<Delivery>,
    lagged: Arc<AtomicBool>,
    /// Gets [`mishkah_core::wire::CompactChange`]s instead of `server:event` frames.
    compact: bool,
    /// `None`: sees every row (an admin, or a session from before the rules).
    reader: Option<scopes::Reader>,
}

/// Subscribers per branch.
pub struct Hub {
    server_id: String,
    branches: Mutex<HashMap<String, HashMap<u64, Subscriber>>>,
    scopes: Mutex<scopes::Interned>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    live: Arc<live::LiveHub>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    /// Frames for this subscriber.
    pub rx: mpsc::Receiver<Delivery>,
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
        Arc::new(Hub {
            server_id,
            branches: Mutex::new(HashMap::new()),
            scopes: Mutex::new(scopes::Interned::default()),
            next_id: AtomicU64::new(1),
            metrics,
            live,
        })
    }

    /// The live queries.
    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Subscribes to every event of `branch` that `who` may see (`who`'s `list` rules; an admin
    /// sees everything).
    /// `compact`: as [`mishkah_core::wire::CompactChange`]s (`client:hello {frames: "compact"}`).
    pub fn subscribe(self: &Arc<Self>, branch: &str, who: Arc<Principal>, compact: bool) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let reader = (!who.admin).then(|| scopes::Reader::new(who, branch));
        let subscriber = Subscriber { tx, lagged: lagged.clone(), compact, reader };
        let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        branches.entry(branch.to_owned()).or_default().insert(id, subscriber);
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
        let delivery = Delivery::new(frame, true);
        subs.retain(|_, sub| self.offer(sub, delivery.clone()));
    }

    /// Queues `delivery` for `sub`; `false` when it must be dropped (lagging or gone).
    fn offer(&self, sub: &Subscriber, delivery: Delivery) -> bool {
        match sub.tx.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                sub.lagged.store(true, Ordering::Release);
                self.metrics.lagged_clients.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Fans a committed change out to the subscribers of its branch, each as its rules let it
    /// see the change: the event, a removal, or nothing.
    pub fn fan_out(&self, p: &Published) {
        let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
        let Some(subs) = branches.get_mut(&p.branch) else {
            return;
        };
        let table = p.schema.table(&p.event.change.table);
        let rules = (!p.access.is_open()).then(|| p.access.table(&p.module, &p.event.change.table));
        // Each serialized at most once per change, when a subscriber first needs it.
        let queued = |frame: Option<Frame>| frame.map(|f| Delivery::new(f, p.txn_end));
        let (mut event, mut removal, mut compact, mut compact_removal) = (None, None, None, None);
        let mut verdicts = scopes::Verdicts::new(p, table);
        let mut interned = rules.map(|_| self.scopes.lock().unwrap_or_else(|p| p.into_inner()));
        let slot = interned.as_mut().map_or(0, |i| i.slot(&p.module, &p.event.change.table));
        subs.retain(|_, sub| {
            let seen = match (rules, sub.reader.as_mut(), interned.as_mut()) {
                (Some(rules), Some(reader), Some(interned)) => {
                    verdicts.of(reader.scope(slot, &p.module, rules, interned))
                }
                _ => scopes::Seen::Event,
            };
            let delivery = match (seen, sub.compact) {
                (scopes::Seen::Nothing, _) => return true,
                (scopes::Seen::Event, false) => event.get_or_insert_with(|| queued(self.event_frame(p))),
                (scopes::Seen::Removal, false) => removal.get_or_insert_with(|| queued(self.removal_frame(p))),
                (scopes::Seen::Event, true) => compact.get_or_insert_with(|| queued(compact_frame(p, false))),
                (scopes::Seen::Removal, true) => compact_removal.get_or_insert_with(|| queued(compact_frame(p, true))),
            };
            match delivery {
                Some(delivery) => self.offer(sub, delivery.clone()),
                None => true,
            }
        });
    }

    /// The `server:event` frame that tells a client a row it held is no longer one it may see:
    /// the change's delete frame.
    fn removal_frame(&self, p: &Published) -> Option<Frame> {
        let mut gone = (*p.event).clone();
        gone.change.kind = mishkah_core::ChangeKind::Delete;
        gone.change.row = None;
        let removed = Published { event: Arc::new(gone), ..p.clone() };
        self.event_frame(&removed)
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
            self.fan_out(&p);
            self.live.publish(&p);
        }
    }
}

/// A committed change as a [`mishkah_core::wire::CompactChange`], serialized once (`removal`:
/// as a delete of the row); `None` for a change no client may see (a locked table).
fn compact_frame(p: &Published, removal: bool) -> Option<Frame> {
    let seen = crate::render::event(&p.schema, &p.event)?;
    let mut change = mishkah_core::wire::CompactChange::of(&seen, &p.module, &p.client_meta);
    if removal {
        change.op = "delete";
        change.row = None;
    }
    Some(Frame::from(serde_json::to_string(&change).expect("changes serialize")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_that_cannot_keep_up_is_dropped_and_flagged() {
        let hub = Hub::new("t".into(), Arc::new(Metrics::default()));
        let mut slow = hub.subscribe("b", Arc::new(Principal::anonymous()), false);
        let mut fast = hub.subscribe("b", Arc::new(Principal::anonymous()), false);
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
