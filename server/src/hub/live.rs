//! Fan-out of live queries: the same committed stream as the branch-wide fan-out, matched per
//! subscription by `mishkah_core::sync::live` and delivered as `server:live` frames.
//!
//! One lock guards every module's index, the subscriptions' targets and the connections' feeds,
//! so a load (replaying what arrived during a read) and the publisher's next change can never
//! interleave: a subscription's frames leave in commit order.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use mishkah_core::sync::live::{Effect, LiveIndex, LiveQuery};
use mishkah_core::wire::LiveChange;
use mishkah_core::{Row, Table};
use tokio::sync::mpsc;

use super::{Frame, Published};
use crate::metrics::Metrics;

/// Messages queued per connection before its live queries count as lagging.
pub const FEED_QUEUE: usize = 4096;

/// What a connection's live feed carries.
#[derive(Debug)]
pub enum LiveOut {
    /// A `server:live` frame to send.
    Frame(Frame),
    /// Read this subscription's window again and hand it to [`LiveFeed::load`].
    Reload(u64),
}

struct Target {
    conn: u64,
    sub_id: String,
    branch: String,
    module: String,
    fields: Option<Vec<String>>,
}

struct FeedTx {
    tx: mpsc::Sender<LiveOut>,
    lagged: Arc<AtomicBool>,
    subs: HashSet<u64>,
}

#[derive(Default)]
struct State {
    /// branch → module → index.
    modules: HashMap<String, HashMap<String, LiveIndex<u64>>>,
    targets: HashMap<u64, Target>,
    feeds: HashMap<u64, FeedTx>,
}

/// Every live query of the server.
pub struct LiveHub {
    state: Mutex<State>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
}

/// One connection's live queries; dropping it ends them all.
pub struct LiveFeed {
    /// Frames and reload requests for this connection.
    pub rx: mpsc::Receiver<LiveOut>,
    /// Set when the feed was dropped for lagging.
    pub lagged: Arc<AtomicBool>,
    conn: u64,
    hub: Arc<LiveHub>,
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        drop_feed(&mut state, self.conn);
    }
}

impl LiveFeed {
    /// Starts a subscription (loading: read its rows, then [`LiveFeed::load`] them) and returns
    /// its id. `fields` projects every row it delivers.
    pub fn watch(
        &self,
        branch: &str,
        module: &str,
        sub_id: &str,
        query: LiveQuery,
        fields: Option<Vec<String>>,
    ) -> Option<u64> {
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        let mut state = self.hub.lock();
        // The hub dropped this feed (lagging): the session notices when its queue ends.
        state.feeds.get_mut(&self.conn)?.subs.insert(id);
        state.modules.entry(branch.to_owned()).or_default().entry(module.to_owned()).or_default().watch(id, query);
        let target = Target {
            conn: self.conn,
            sub_id: sub_id.to_owned(),
            branch: branch.to_owned(),
            module: module.to_owned(),
            fields,
        };
        state.targets.insert(id, target);
        Some(id)
    }

    /// Ends a subscription.
    pub fn unwatch(&self, id: u64) {
        let mut state = self.hub.lock();
        if let Some(feed) = state.feeds.get_mut(&self.conn) {
            feed.subs.remove(&id);
        }
        unwatch(&mut state, id);
    }

    /// What a subscription's rows were read at and what was read: its first load records them,
    /// a reload delivers the difference; changes that arrived meanwhile follow.
    pub fn load(&self, table: &Table, id: u64, rows: Vec<Row>, more: bool, at: u64) {
        let mut state = self.hub.lock();
        let Some(target) = state.targets.get(&id) else { return };
        let (branch, module) = (target.branch.clone(), target.module.clone());
        let Some(index) = state.modules.get_mut(&branch).and_then(|m| m.get_mut(&module)) else { return };
        let effects = index.load(table, id, rows, more, at);
        self.hub.dispatch(&mut state, table, effects);
    }
}

impl LiveHub {
    /// An empty hub.
    pub fn new(metrics: Arc<Metrics>) -> Arc<LiveHub> {
        Arc::new(LiveHub { state: Mutex::new(State::default()), next_id: AtomicU64::new(1), metrics })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A feed for one connection.
    pub fn feed(self: &Arc<Self>) -> LiveFeed {
        let (tx, rx) = mpsc::channel(FEED_QUEUE);
        let conn = self.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        self.lock().feeds.insert(conn, FeedTx { tx, lagged: lagged.clone(), subs: HashSet::new() });
        LiveFeed { rx, lagged, conn, hub: self.clone() }
    }

    /// Number of live queries.
    pub fn len(&self) -> usize {
        self.lock().targets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feeds a committed change to the live queries of its module.
    pub fn publish(&self, p: &Published) {
        let mut state = self.lock();
        let Some(index) = state.modules.get_mut(&p.branch).and_then(|m| m.get_mut(&p.module)) else { return };
        let table_name = &p.event.change.table;
        if !index.watches(table_name) {
            return;
        }
        let Some(table) = p.schema.table(table_name) else { return };
        let effects = index.apply(table, &p.event);
        self.dispatch(&mut state, table, effects);
    }

    fn dispatch(&self, state: &mut State, table: &Table, effects: Vec<Effect<u64>>) {
        for effect in effects {
            let (id, out) = match effect {
                Effect::Deliver { id, op, key, row, sequence } => {
                    let Some(target) = state.targets.get(&id) else { continue };
                    let seen = match row.as_deref() {
                        Some(row) => match crate::render::row(table, row) {
                            Some(seen) => Some(project(seen, target.fields.as_deref())),
                            None => continue,
                        },
                        None => None,
                    };
                    let frame = LiveChange {
                        sub_id: target.sub_id.as_str().into(),
                        op,
                        key: key.0.as_str().into(),
                        row: seen,
                        cursor: sequence,
                    };
                    let text = serde_json::to_string(&frame).expect("frames serialize");
                    (id, LiveOut::Frame(Frame::from(text)))
                }
                Effect::Reload { id } => (id, LiveOut::Reload(id)),
            };
            let Some(conn) = state.targets.get(&id).map(|t| t.conn) else { continue };
            let Some(feed) = state.feeds.get(&conn) else { continue };
            match feed.tx.try_send(out) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    feed.lagged.store(true, Ordering::Release);
                    self.metrics.lagged_clients.inc();
                    drop_feed(state, conn);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => drop_feed(state, conn),
            }
        }
    }
}

fn project<'r>(row: std::borrow::Cow<'r, Row>, fields: Option<&[String]>) -> std::borrow::Cow<'r, Row> {
    match fields {
        None => row,
        Some(keep) => std::borrow::Cow::Owned(
            row.iter().filter(|(k, _)| keep.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
    }
}

fn unwatch(state: &mut State, id: u64) {
    let Some(target) = state.targets.remove(&id) else { return };
    let Some(modules) = state.modules.get_mut(&target.branch) else { return };
    if let Some(index) = modules.get_mut(&target.module) {
        index.unwatch(id);
        if index.is_empty() {
            modules.remove(&target.module);
        }
    }
    if modules.is_empty() {
        state.modules.remove(&target.branch);
    }
}

/// Ends every subscription of a connection and closes its queue (after what is queued drains,
/// the session sees the end and, when lagging, tells the client to subscribe again).
fn drop_feed(state: &mut State, conn: u64) {
    let Some(feed) = state.feeds.remove(&conn) else { return };
    for id in feed.subs {
        unwatch(state, id);
    }
}
