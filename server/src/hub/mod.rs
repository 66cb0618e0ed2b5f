//! Fan-out: every committed change reaches every subscriber of its branch that may see it,
//! exactly once.
//!
//! Writers hand committed events to one publisher task ([`Hub::run_publisher`]) right after
//! commit. It serializes each change once per frame shape (the original's `server:event`, and a
//! [`mishkah_core::wire::CompactChange`] for compact clients) and appends it to the branch's feed
//! (`feed.rs`), which every subscriber reads from at its own pace: a change costs the publisher
//! a wake-up of each subscriber that was waiting, not a queue push per subscriber. A subscriber
//! too far behind is dropped from live fan-out and flagged `lagged`, so its session tells the
//! client to resync instead of letting server memory grow.
//!
//! With security rules, each subscriber reads through its table's `list` rule (`scopes.rs`): a
//! change reaches it if the rule admits the row after the write; if the rule admitted the row
//! before and not after, it gets a removal (the event's delete frame) instead. A rule is bound to
//! each subscriber once per table and interned, so subscribers whose rules bind alike share one
//! verdict per change, and at most two frames per shape (the event, the removal) are serialized
//! per change.
//!
//! Live queries ([`live`]) read the same stream, after the branch-wide fan-out of each change.

mod feed;
pub mod live;
mod scopes;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::task::Poll;

use mishkah_core::sync::ChangeEvent;
use mishkah_core::wire::{CommitFrame, CommitSite, ServerFrame};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use feed::{Entry, Feed, Reading};

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
    /// The table's name as its writer gave it, when not the module's: the original's frames
    /// carry it.
    pub table_as_sent: Option<Arc<str>>,
    /// The last change of its transaction (a batch's changes are delivered without a frame
    /// boundary between them).
    pub txn_end: bool,
    /// When it was handed to the hub: fan-out latency is measured from here.
    pub handed_at: std::time::Instant,
}

/// What a subscriber reads of a change: a serialized frame (for a compact subscriber, one
/// [`mishkah_core::wire::CompactChange`]) and whether it ends its transaction. One pointer, made
/// once per change and frame shape and shared by every subscriber it goes to.
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

    /// A change's frame, if anyone may see it.
    fn of(frame: Option<Frame>, txn_end: bool) -> Option<Delivery> {
        frame.map(|f| Delivery::new(f, txn_end))
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

/// Changes a subscriber may fall behind before it counts as lagging.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// Subscribers per branch.
pub struct Hub {
    server_id: String,
    branches: Mutex<HashMap<String, Arc<Feed>>>,
    scopes: Mutex<scopes::Interned>,
    metrics: Arc<Metrics>,
    live: Arc<live::LiveHub>,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    reading: Reading,
    /// Read from the feed, not yet taken.
    pending: VecDeque<Delivery>,
    branch: String,
    hub: Arc<Hub>,
}

impl Subscription {
    /// The next change for this subscriber if one is there; `None` also once it has lagged.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        if self.pending.is_empty() {
            let _ = self.reading.poll_read(&self.hub, &mut self.pending, None);
        }
        self.pending.pop_front()
    }

    /// The next change for this subscriber; `None` once it has lagged (it gets nothing more).
    pub async fn recv(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| loop {
            if let Some(next) = self.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            match self.reading.poll_read(&self.hub, &mut self.pending, Some(cx)) {
                Poll::Ready(true) => continue,
                Poll::Ready(false) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// The next change of the transaction this subscriber has read part of, waiting for it if
    /// it is still to come (a sender waits rather than cut a transaction between frames);
    /// `None` once the transaction's last change has been read, even when this subscriber may
    /// see none of the rest, or once it has lagged.
    pub async fn recv_rest_of_transaction(&mut self) -> Option<Delivery> {
        std::future::poll_fn(|cx| loop {
            if let Some(next) = self.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            if !self.reading.mid_transaction {
                return Poll::Ready(None);
            }
            match self.reading.poll_read(&self.hub, &mut self.pending, Some(cx)) {
                Poll::Ready(true) => continue,
                Poll::Ready(false) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// The hub dropped this subscriber for falling behind.
    pub fn lagged(&self) -> bool {
        self.reading.lagged
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let r = &self.reading;
        let left = r.feed.leave(r.slot, r.position, r.compact);
        if left == 0 {
            let mut branches = self.hub.branches.lock().unwrap_or_else(|p| p.into_inner());
            if branches.get(&self.branch).is_some_and(|f| Arc::ptr_eq(f, &r.feed) && f.readers() == 0) {
                branches.remove(&self.branch);
            }
        }
    }
}

impl Hub {
    pub fn new(server_id: String, metrics: Arc<Metrics>) -> Arc<Hub> {
        let live = live::LiveHub::new(metrics.clone());
        Arc::new(Hub {
            server_id,
            branches: Mutex::new(HashMap::new()),
            scopes: Mutex::new(scopes::Interned::default()),
            metrics,
            live,
        })
    }

    pub fn live(&self) -> &Arc<live::LiveHub> {
        &self.live
    }

    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Subscribes to every event of `branch` that `who` may see (`who`'s `list` rules; an admin
    /// sees everything), from now on.
    /// `compact`: as [`mishkah_core::wire::CompactChange`]s (`client:hello {frames: "compact"}`).
    pub fn subscribe(self: &Arc<Self>, branch: &str, who: Arc<Principal>, compact: bool) -> Subscription {
        let (feed, slot, position) = {
            let mut branches = self.branches.lock().unwrap_or_else(|p| p.into_inner());
            let feed = branches.entry(branch.to_owned()).or_default().clone();
            // Joined under the map's lock, so a feed its last reader is leaving is not joined.
            let (slot, position) = feed.join(compact);
            (feed, slot, position)
        };
        let reader = (!who.admin).then(|| scopes::Reader::new(who, branch));
        let reading = Reading { feed, slot, position, compact, reader, lagged: false, mid_transaction: false };
        Subscription { reading, pending: VecDeque::new(), branch: branch.to_owned(), hub: self.clone() }
    }

    /// Number of subscribers of a branch.
    pub fn subscriber_count(&self, branch: &str) -> usize {
        let feed = self.branches.lock().unwrap_or_else(|p| p.into_inner()).get(branch).cloned();
        feed.map_or(0, |f| f.readers())
    }

    fn feed(&self, branch: &str) -> Option<Arc<Feed>> {
        self.branches.lock().unwrap_or_else(|p| p.into_inner()).get(branch).cloned()
    }

    /// Sends one frame to every subscriber of `branch`, whatever shape it reads (the tests'
    /// way to fill a feed without building changes).
    #[cfg(test)]
    fn broadcast(&self, branch: &str, frame: Frame) {
        let Some(feed) = self.feed(branch) else { return };
        let delivery = Some(Some(Delivery::new(frame, true)));
        feed.append(Entry::change(None, 0, delivery.clone(), delivery, true), |_| None);
    }

    /// Fans a committed change out to the subscribers of its branch, each as its rules let it
    /// see the change: the event, a removal, or nothing.
    pub fn fan_out(&self, p: &Published) {
        let Some(feed) = self.feed(&p.branch) else { return };
        let render = |compact: bool| {
            Delivery::of(if compact { compact_frame(p, false) } else { self.event_frame(p) }, p.txn_end)
        };
        // Serialized before the feed's lock is taken, for the shapes its readers read now.
        let (original, compact) = feed.shapes();
        let event = original.then(|| render(false));
        let compact = compact.then(|| render(true));
        let (change, slot) = if p.access.is_open() {
            (None, 0)
        } else {
            let slot = self.scopes.lock().unwrap_or_else(|p| p.into_inner()).slot(&p.module, &p.event.change.table);
            (Some(Box::new(p.clone())), slot)
        };
        feed.append(Entry::change(change, slot, event, compact, p.txn_end), render);
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
        let mut body =
            CommitFrame::from_event(&seen, site, p.source, p.client_meta.clone(), p.primary_key.clone(), true);
        if let Some(name) = &p.table_as_sent {
            body = body.named(name);
        }
        let body = body.into_event();
        let text = serde_json::to_string(&ServerFrame::Event(body)).expect("frames serialize");
        Some(Frame::from(text))
    }

    /// Publishes committed events in commit order until every writer is gone.
    pub async fn run_publisher(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Published>) {
        while let Some(p) = rx.recv().await {
            self.fan_out(&p);
            self.live.publish(&p);
            self.metrics.fanout_seconds.observe(p.handed_at.elapsed().as_secs_f64());
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
        let mut behind = hub.subscribe("b", Arc::new(Principal::anonymous()), true);
        for n in 0..SUBSCRIBER_QUEUE {
            hub.broadcast("b", Frame::from(n.to_string()));
            assert_eq!(fast.recv().await.unwrap().as_str(), n.to_string());
        }
        // A whole queue behind is still in time: it reads every change, in order.
        for n in 0..SUBSCRIBER_QUEUE {
            assert_eq!(behind.try_recv().unwrap().as_str(), n.to_string());
        }
        assert!(behind.try_recv().is_none());
        // One more: `slow` has read nothing and is now too far behind.
        hub.broadcast("b", Frame::from("last"));
        assert!(slow.recv().await.is_none(), "the subscriber that fell behind gets nothing more");
        assert!(slow.lagged());
        assert!(!fast.lagged() && !behind.lagged());
        assert_eq!(fast.recv().await.unwrap().as_str(), "last");
        assert_eq!(behind.recv().await.unwrap().as_str(), "last");
        drop(slow);
        assert_eq!(hub.subscriber_count("b"), 2);
    }

    #[tokio::test]
    async fn a_change_waits_for_no_one_and_the_last_subscriber_to_go_ends_the_feed() {
        let hub = Hub::new("t".into(), Arc::new(Metrics::default()));
        let mut a = hub.subscribe("b", Arc::new(Principal::anonymous()), false);
        let waiting = tokio::spawn(async move { a.recv().await.map(|d| d.as_str().to_owned()) });
        tokio::task::yield_now().await;
        hub.broadcast("b", Frame::from("x"));
        assert_eq!(waiting.await.unwrap().as_deref(), Some("x"), "a waiting subscriber is woken");
        assert_eq!(hub.subscriber_count("b"), 0);
        // Changes nobody reads are not kept; a later subscriber starts after them.
        hub.broadcast("b", Frame::from("unread"));
        let mut late = hub.subscribe("b", Arc::new(Principal::anonymous()), false);
        assert!(late.try_recv().is_none());
        hub.broadcast("b", Frame::from("y"));
        assert_eq!(late.try_recv().unwrap().as_str(), "y");
    }
}
