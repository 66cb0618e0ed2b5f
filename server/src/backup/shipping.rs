//! Continuous backup (`serve --backup-to`): each module's log shipped to the target as it commits
//! (a segment per module every round that has new events), and a snapshot on a schedule, after
//! which what no kept snapshot needs is pruned. The point of loss after a destroyed disk is what
//! committed since the last round (`--backup-ship-ms`), not since the last snapshot.
//!
//! The shipped cursor of each module is the target's own (its last segment), so a restart goes
//! on where the last run stopped; compaction keeps every event not shipped yet
//! ([`Shipping::needed_after`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::segment::{self, Segment};
use super::snapshot::{self, Manifest};
use super::{BackupError, Progress, Target};
use crate::engine::{Engine, ModuleHandle, Opening};
use crate::storage::ModuleAt;

/// Events per segment at most.
const PAGE: usize = 10_000;

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
    /// The snapshot a new module's shipping starts from, and when the last one finished.
    snapshots: Mutex<Snapshots>,
}

#[derive(Default)]
struct Snapshots {
    newest: Option<Manifest>,
    finished_at: Option<Instant>,
    running: bool,
}

impl Shipping {
    /// Starts shipping `engine`'s modules to the schedule's target.
    pub fn start(engine: Arc<Engine>, metrics: Arc<crate::metrics::Metrics>, schedule: Schedule) -> Arc<Shipping> {
        let this = Arc::new(Shipping {
            engine,
            metrics,
            schedule,
            shipped: Mutex::new(HashMap::new()),
            snapshots: Mutex::new(Snapshots::default()),
        });
        let runner = this.clone();
        tokio::spawn(async move { runner.run().await });
        this
    }

    /// The last sequence of the module shipped (0 until shipping knows): compaction keeps what
    /// comes after.
    pub fn needed_after(&self, branch: &str, module: &str) -> u64 {
        self.lock_shipped().get(&(branch.to_owned(), module.to_owned())).copied().unwrap_or(0)
    }

    fn lock_shipped(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u64>> {
        self.shipped.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_snapshots(&self) -> std::sync::MutexGuard<'_, Snapshots> {
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>) {
        match snapshot::list(&self.schedule.target).await {
            Ok(found) => self.lock_snapshots().newest = found.into_iter().last(),
            Err(e) => tracing::warn!(error = %e, "backup: the target's snapshots could not be listed"),
        }
        if self.lock_snapshots().newest.is_none() {
            self.clone().snapshot().await;
        }
        loop {
            let due = {
                let s = self.lock_snapshots();
                !s.running && s.finished_at.is_none_or(|at| at.elapsed() >= self.schedule.every)
            };
            if due {
                let this = self.clone();
                tokio::spawn(async move { this.snapshot().await });
            }
            self.round().await;
            tokio::time::sleep(self.schedule.ship).await;
        }
    }

    /// Ships every module's new events.
    pub async fn round(&self) {
        let data = self.engine.data().clone();
        let backend = self.engine.backend().clone();
        let initialized = tokio::task::spawn_blocking(move || {
            crate::migrate::modules(&data)
                .into_iter()
                .filter(|(branch, module)| {
                    let dir = data.module_dir(branch, module);
                    backend.initialized(&ModuleAt { branch, module, dir: &dir }).unwrap_or(false)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (branch, module) in initialized {
            let Ok(handle) = self.engine.module_as(&branch, &module, Opening::ExistingOnly).await else { continue };
            if let Err(e) = self.ship(&handle).await {
                self.metrics.backup_failures.inc();
                tracing::warn!(%branch, %module, error = %e, "backup: shipping the log failed (retried next round)");
            }
        }
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
            self.schedule.target.put(&segment.key(), segment.encode()).await?;
            cursor = segment.last;
            self.lock_shipped().insert(key.clone(), cursor);
        }
    }

    /// Where a module's shipping resumes: its last shipped segment, else the newest snapshot's
    /// head of it, else its first event (a module created after the snapshot).
    async fn cursor_from_target(&self, handle: &ModuleHandle) -> Result<u64, BackupError> {
        let shipped = self.schedule.target.list(&segment::folder(&handle.branch, &handle.module)).await?;
        let last = shipped.iter().filter_map(|o| segment::span_of(&o.key)).map(|(_, last)| last).max();
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
        self.lock_snapshots().finished_at = None;
    }

    /// Takes a snapshot, then prunes the snapshots and segments no kept snapshot needs.
    async fn snapshot(self: Arc<Self>) {
        self.lock_snapshots().running = true;
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
                s.finished_at = Some(Instant::now());
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
