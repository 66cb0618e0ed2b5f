//! Continuous backup (`serve --backup-to`): each module's log shipped to the target as it commits
//! (a segment per module every round that has new events), and a snapshot on a schedule, after
//! which what no kept snapshot needs is pruned. The point of loss after a destroyed disk is what
//! committed since the last round (`--backup-ship-ms`), not since the last snapshot.
//!
//! The shipped cursor of each module is the target's own (its last segment), so a restart goes
//! on where the last run stopped; compaction keeps every event not shipped yet
//! ([`Shipping::needed_after`]). With several nodes on one store, one ships at a time (a
//! [`Lease`]); another takes over, from the target's cursors, when it stops renewing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::segment::{self, Segment};
use super::snapshot::{self, Manifest};
use super::{BackupError, Progress, Target};
use crate::engine::{Engine, ModuleHandle, Opening};
use crate::lease::Lease;
use crate::storage::{ModuleAt, SharedDocs};

/// Events per segment at most.
const PAGE: usize = 10_000;
/// The shared document of the shipping node's lease.
const LEASE: &str = "backup/lease.json";

/// How continuous backup runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub target: Target,
    /// Between snapshots.
    pub every: Duration,
    /// Snapshots kept.
    pub keep: usize,
    /// Between rounds of shipping.
    pub ship: Duration,
}

/// The running continuous backup.
pub struct Shipping {
    engine: Arc<Engine>,
    metrics: Arc<crate::metrics::Metrics>,
    schedule: Schedule,
    /// Each module's last shipped sequence, once known.
    shipped: Mutex<HashMap<(String, String), u64>>,
    /// The snapshot a new module's shipping starts from, and whether one is being taken.
    snapshots: Mutex<Snapshots>,
    /// Who ships, when several nodes share the store.
    lease: Option<Lease>,
    /// Whether a round has looked at every module since the start.
    looked_at_all: AtomicBool,
    /// Closed modules whose last events are not shipped yet, with their heads (kept until they
    /// are, a failed round included).
    closed_behind: Mutex<HashMap<(String, String), u64>>,
}

#[derive(Default)]
struct Snapshots {
    newest: Option<Manifest>,
    running: bool,
    /// A module's log was compacted past what was shipped: the next round takes a snapshot.
    forced: bool,
}

impl Snapshots {
    /// Whether a snapshot is due: none yet, or the newest older than `every`.
    fn due(&self, every: Duration) -> bool {
        if self.running {
            return false;
        }
        let age = self
            .newest
            .as_ref()
            .and_then(|m| chrono::DateTime::parse_from_rfc3339(&m.created_at).ok())
            .map(|at| (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).to_std().unwrap_or(Duration::ZERO));
        self.forced || age.is_none_or(|age| age >= every)
    }
}

impl Shipping {
    /// Starts shipping `engine`'s modules to the schedule's target; `node` names this process
    /// in the lease `docs` keep when they are shared with other nodes.
    pub fn start(
        engine: Arc<Engine>,
        metrics: Arc<crate::metrics::Metrics>,
        schedule: Schedule,
        docs: Arc<dyn SharedDocs>,
        node: &str,
    ) -> Arc<Shipping> {
        // Renewed every round; a node that stopped for ten rounds has stopped. What it had not
        // shipped is in the shared store: the next node ships it.
        let ttl = (schedule.ship * 10).clamp(Duration::from_secs(5), Duration::from_secs(30));
        let lease = docs.remote().then(|| Lease::new(docs, LEASE, node, ttl));
        let this = Arc::new(Shipping {
            engine,
            metrics,
            schedule,
            shipped: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(Snapshots::default()),
            lease,
            looked_at_all: AtomicBool::new(false),
            closed_behind: Mutex::new(HashMap::new()),
        });
        let runner = this.clone();
        tokio::spawn(async move { runner.run().await });
        this
    }

    /// Every finished snapshot on the target, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<Manifest>, BackupError> {
        snapshot::list(&self.schedule.target).await
    }

    /// The target's name (a directory, or `s3://bucket/prefix`).
    pub fn target_name(&self) -> &str {
        &self.schedule.target.name
    }

    /// Whether a snapshot is being taken now.
    pub fn snapshot_running(&self) -> bool {
        self.lock_snapshots().running
    }

    /// Has the next round (within `--backup-ship-ms`) take a snapshot, whatever the schedule says.
    pub fn request_snapshot(&self) {
        self.lock_snapshots().forced = true;
    }

    /// The last sequence of the module shipped (0 until shipping knows): compaction keeps what
    /// comes after.
    pub async fn needed_after(&self, branch: &str, module: &str) -> u64 {
        if self.lease.is_some() {
            // Another node may be the one shipping: the target says how far it got.
            let newest = snapshot::list(&self.schedule.target).await.ok().and_then(|found| found.into_iter().last());
            let last = self.last_shipped(branch, module).await.ok().flatten();
            return last.max(newest.and_then(|m| m.head_of(branch, module))).unwrap_or(0);
        }
        self.lock_shipped().get(&(branch.to_owned(), module.to_owned())).copied().unwrap_or(0)
    }

    /// The last sequence of the module's shipped segments on the target.
    async fn last_shipped(&self, branch: &str, module: &str) -> Result<Option<u64>, BackupError> {
        let shipped = self.schedule.target.list(&segment::folder(branch, module)).await?;
        Ok(shipped.iter().filter_map(|o| segment::span_of(&o.key)).map(|(_, last)| last).max())
    }

    fn lock_shipped(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.shipped.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_snapshots(&self) -> std::sync::MutexGuard<'_, Snapshots> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>) {
        let mut held = false;
        loop {
            let holds = self.holds().await;
            if holds && !held {
                // Taking over (or starting): what the target holds is where shipping goes on.
                self.lock_shipped().clear();
                match snapshot::list(&self.schedule.target).await {
                    Ok(found) => self.lock_snapshots().newest = found.into_iter().last(),
                    Err(e) => tracing::warn!(error = %e, "backup: the target's snapshots could not be listed"),
                }
            }
            held = holds;
            let mut based = false;
            if holds {
                let due = self.lock_snapshots().due(self.schedule.every);
                if due {
                    self.lock_snapshots().running = true;
                    tokio::spawn(self.clone().snapshot());
                }
                // A module's shipping starts from a snapshot's head: none before the first.
                based = self.lock_snapshots().newest.is_some();
                if based {
                    self.round().await;
                }
            }
            // Until the first snapshot is there, look again soon (the lease is renewed meanwhile).
            let pause = if based { self.schedule.ship } else { self.schedule.ship.min(Duration::from_millis(100)) };
            tokio::time::sleep(pause).await;
        }
    }

    /// Whether this node ships now.
    async fn holds(&self) -> bool {
        let Some(lease) = self.lease.clone() else { return true };
        match tokio::task::spawn_blocking(move || lease.hold()).await {
            Ok(Ok(holds)) => holds,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "backup: the shipping lease could not be read");
                false
            }
            Err(_) => false,
        }
    }

    /// Ships every module's new events. On one node the first round looks at every module
    /// (what committed before a restart), later ones at the open modules and those closed since
    /// with events not yet shipped: a module is written only while open, so looking does not
    /// keep closed modules open. With several nodes on one store, the others
    /// write modules this node has closed: every round looks at every module.
    pub async fn round(&self) {
        let every = self.lease.is_some() || !self.looked_at_all.swap(true, AtomicOrdering::AcqRel);
        if !every {
            self.ship_closed().await;
        }
        let handles = if every { self.every_module().await } else { self.engine.open_modules().await };
        for handle in handles {
            if let Err(e) = self.ship(&handle).await {
                self.metrics.backup_failures.inc();
                let (branch, module) = (&handle.branch, &handle.module);
                tracing::warn!(%branch, %module, error = %e, "backup: shipping the log failed (retried next round)");
            }
        }
    }

    /// Ships what the modules closed since the last round (idle, or to make room) committed and
    /// was not shipped yet: each is opened again once, alone (it may need the place of another
    /// idle module), and let go; with its head shipped, its next close opens nothing.
    async fn ship_closed(&self) {
        let closed = self.engine.take_closed_modules().await;
        let behind: Vec<_> = {
            let mut behind = self.closed_behind.lock().unwrap_or_else(|p| p.into_inner());
            for (key, head) in closed {
                let at = behind.entry(key).or_default();
                *at = (*at).max(head);
            }
            behind.iter().map(|(k, h)| (k.clone(), *h)).collect()
        };
        let open: Vec<_> =
            self.engine.open_modules().await.iter().map(|h| (h.branch.clone(), h.module.clone())).collect();
        for (key, head) in behind {
            let shipped = self.lock_shipped().get(&key).copied();
            // An open module is shipped with the rest of the round.
            let mut done = open.contains(&key) || shipped.is_some_and(|s| s >= head);
            if !done {
                if let Ok(handle) = self.engine.module_as(&key.0, &key.1, Opening::ExistingOnly).await {
                    match self.ship(&handle).await {
                        Ok(()) => done = true,
                        Err(e) => {
                            self.metrics.backup_failures.inc();
                            tracing::warn!(branch = %key.0, module = %key.1, error = %e,
                                "backup: shipping a closed module's log failed (retried next round)");
                        }
                    }
                }
            }
            if done {
                self.closed_behind.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            }
        }
    }

    /// Every module that was ever initialized, opened.
    async fn every_module(&self) -> Vec<Arc<ModuleHandle>> {
        let data = self.engine.data().clone();
        let backend = self.engine.backend().clone();
        let initialized = tokio::task::spawn_blocking(move || {
            crate::migrate::modules_in(&data, &*backend)
                .unwrap_or_default()
                .into_iter()
                .filter(|(branch, module)| {
                    let dir = data.module_dir(branch, module);
                    backend.initialized(&ModuleAt { branch, module, dir: &dir }).unwrap_or(false)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut handles = Vec::new();
        for (branch, module) in initialized {
            if let Ok(handle) = self.engine.module_as(&branch, &module, Opening::ExistingOnly).await {
                handles.push(handle);
            }
        }
        handles
    }

    /// Ships a module's events after its cursor, a segment per page.
    async fn ship(&self, handle: &Arc<ModuleHandle>) -> Result<(), BackupError> {
        let key = (handle.branch.clone(), handle.module.clone());
        let known = self.lock_shipped().get(&key).copied();
        let mut cursor = match known {
            Some(cursor) => cursor,
            None => self.cursor_from_target(handle).await?,
        };
        loop {
            self.metrics.backup_shipped(&handle.branch, &handle.module, cursor, handle.head());
            if handle.head() <= cursor {
                return Ok(());
            }
            let (oldest, events, counters) =
                handle.read(move |r, _| Ok((r.bounds()?.0, r.logged_after(cursor, PAGE)?, r.counters()?))).await?;
            if oldest > cursor + 1 {
                // Compacted before shipping began (a first start on an old data directory): the
                // next snapshot is where this module's shipping starts.
                self.rebase_on_next_snapshot(handle);
                return Ok(());
            }
            let Some(segment) = Segment::new(&handle.branch, &handle.module, events, counters) else { return Ok(()) };
            if !self.holds().await {
                // Another node took over: it ships from the target's cursor.
                return Ok(());
            }
            self.schedule.target.put(&segment.key(), segment.encode()).await?;
            cursor = segment.last;
            self.lock_shipped().insert(key.clone(), cursor);
        }
    }

    /// Where a module's shipping resumes: its last shipped segment, else the newest snapshot's
    /// head of it, else its first event (a module created after the snapshot).
    async fn cursor_from_target(&self, handle: &ModuleHandle) -> Result<u64, BackupError> {
        let last = self.last_shipped(&handle.branch, &handle.module).await?;
        let from_snapshot =
            self.lock_snapshots().newest.as_ref().and_then(|m| m.head_of(&handle.branch, &handle.module));
        let cursor = last.max(from_snapshot).unwrap_or(0);
        self.lock_shipped().insert((handle.branch.clone(), handle.module.clone()), cursor);
        Ok(cursor)
    }

    fn rebase_on_next_snapshot(&self, handle: &ModuleHandle) {
        tracing::warn!(
            branch = %handle.branch,
            module = %handle.module,
            "backup: the log was compacted past what was shipped; shipping resumes after the next snapshot"
        );
        self.lock_shipped().remove(&(handle.branch.clone(), handle.module.clone()));
        self.lock_snapshots().forced = true;
    }

    /// Takes a snapshot, then prunes the snapshots and segments no kept snapshot needs.
    async fn snapshot(self: Arc<Self>) {
        let this = self.clone();
        let taken = tokio::task::spawn_blocking(move || {
            let runtime = tokio::runtime::Handle::current();
            let progress = Progress::logged("backup");
            let data = this.engine.data().clone();
            let manifest = snapshot::take(&data, &**this.engine.backend(), &this.schedule.target, &runtime, &progress)?;
            let oldest = super::block_on(&runtime, snapshot::prune(&this.schedule.target, this.schedule.keep))?;
            if let Some(oldest) = oldest {
                super::block_on(&runtime, prune_segments(&this.schedule.target, &oldest))?;
            }
            Ok::<_, BackupError>(manifest)
        })
        .await;
        let mut s = self.lock_snapshots();
        s.running = false;
        match taken {
            Ok(Ok(manifest)) => {
                tracing::info!(snapshot = %manifest.name, modules = manifest.modules.len(), "backup: snapshot taken");
                let seconds = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                self.metrics.backup_last_snapshot.set(seconds as i64);
                s.newest = Some(manifest);
                s.forced = false;
            }
            Ok(Err(e)) => {
                self.metrics.backup_failures.inc();
                tracing::warn!(error = %e, "backup: the snapshot failed (retried next round)");
            }
            Err(e) => tracing::warn!(error = %e, "backup: the snapshot task failed"),
        }
    }
}

/// Deletes the segments wholly before the oldest kept snapshot's head of their module.
async fn prune_segments(target: &Target, oldest: &Manifest) -> Result<(), BackupError> {
    for module in &oldest.modules {
        for object in target.list(&segment::folder(&module.branch, &module.module)).await? {
            if segment::span_of(&object.key).is_some_and(|(_, last)| last <= module.head) {
                target.delete(&object.key).await?;
            }
        }
    }
    Ok(())
}
