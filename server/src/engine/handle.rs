//! One open branch+module: what callers hold to write (through its writer thread), read (on its
//! readers, one snapshot per read) and ask about it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mishkah_core::record::Strictness;
use mishkah_core::rules::{Action, Principal, ReadScope, RuleSet};
use mishkah_core::{Mutation, Schema};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::open_modules::LastUsed;
use super::sender::Sender;
use super::writer::{Job, WriteJob};
use super::{Committed, WriteError, WriteOutcome};
use crate::storage::{consistent, ModuleRead, ModuleReads, ModuleWriter, StorageError};

/// One open branch+module.
pub struct ModuleHandle {
    pub branch: String,
    pub module: String,
    /// Its schema (with tables added for seed data the schema lacks).
    pub schema: Arc<Schema>,
    /// The deployment's security rules.
    pub access: Arc<RuleSet>,
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) readers: Arc<dyn ModuleReads>,
    pub(super) follower: Arc<super::follower::Follower>,
    pub(super) head: Arc<AtomicU64>,
    pub(super) last_used: LastUsed,
    /// Tables known to have a search index (built on their first search).
    pub(super) searchable: Mutex<std::collections::HashSet<String>>,
}

/// Jobs queued per module before producers wait (backpressure instead of unbounded memory).
pub(super) const JOB_QUEUE: usize = 65_536;

impl ModuleHandle {
    /// Queues a job. Order of submission is the order of application.
    pub async fn submit(&self, job: Job) -> Result<(), WriteError> {
        self.jobs.send(job).await.map_err(|_| WriteError::Unavailable)
    }

    /// Writes one mutation and waits for its outcome (committed, published).
    pub async fn write(&self, mutation: Mutation, source: &'static str, meta: Value, sender: Sender) -> WriteOutcome {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        let strictness = Strictness::Strict;
        self.submit(Job::Write(WriteJob { mutation, source, meta, strictness, sender, reply })).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Writes each mutation on its own as the system (a seed, a backfill), queued in order so the
    /// writer groups them as it groups client writes, and waits for every outcome.
    pub(super) async fn write_each(
        &self,
        mutations: Vec<Mutation>,
        source: &'static str,
        strictness: Strictness,
    ) -> Vec<WriteOutcome> {
        let sender = Sender::system();
        let mut waits = Vec::with_capacity(mutations.len());
        for mutation in mutations {
            let (tx, rx) = oneshot::channel();
            let reply = Box::new(move |outcome| {
                let _ = tx.send(outcome);
            });
            let job = WriteJob { mutation, source, meta: Value::Null, strictness, sender: sender.clone(), reply };
            if self.submit(Job::Write(job)).await.is_err() {
                break;
            }
            waits.push(rx);
        }
        let mut outcomes = Vec::with_capacity(waits.len());
        for rx in waits {
            outcomes.push(rx.await.unwrap_or(Err(WriteError::Unavailable)));
        }
        outcomes
    }

    /// Writes several mutations atomically: all commit, or none.
    pub async fn write_atomic(
        &self,
        mutations: Vec<Mutation>,
        source: &'static str,
        meta: Value,
        sender: Sender,
    ) -> Result<Vec<Committed>, WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        let precondition = None;
        self.submit(Job::Atomic {
            mutations,
            source,
            meta,
            strictness: Strictness::Strict,
            sender,
            precondition,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Writes several mutations atomically if `precondition` holds of the stored state inside
    /// the same transaction: all commit, or none.
    pub async fn write_atomic_if(
        &self,
        mutations: Vec<Mutation>,
        source: &'static str,
        sender: Sender,
        precondition: super::writer::Precondition,
    ) -> Result<Vec<Committed>, WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        let (meta, strictness, precondition) = (Value::Null, Strictness::Strict, Some(precondition));
        self.submit(Job::Atomic { mutations, source, meta, strictness, sender, precondition, reply }).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Runs a plan on the writer and writes what it decides, all or none.
    pub async fn write_planned(
        &self,
        plan: super::plan::Planner,
        source: &'static str,
        meta: Value,
        sender: Sender,
    ) -> Result<Vec<Committed>, WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.submit(Job::Planned { plan, source, meta, sender, reply }).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Writes imported rows (restore, reset, a legacy topic's state) atomically: missing
    /// required fields are tolerated; the rules are `sender`'s.
    pub async fn import_atomic(
        &self,
        mutations: Vec<Mutation>,
        source: &'static str,
        sender: Sender,
    ) -> Result<Vec<Committed>, WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        let (meta, strictness, precondition) = (Value::Null, Strictness::Import, None);
        self.submit(Job::Atomic { mutations, source, meta, strictness, sender, precondition, reply }).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Archives and deletes every row of `tables` (the original's purge).
    pub async fn purge(&self, tables: Vec<String>, archive: String) -> Result<Vec<Committed>, WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.submit(Job::Purge { tables, archive, reply }).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Replaces every sequence counter.
    pub async fn reset_counters(&self, counters: std::collections::BTreeMap<String, i64>) -> Result<(), WriteError> {
        let (tx, rx) = oneshot::channel();
        let reply = Box::new(move |outcome| {
            let _ = tx.send(outcome);
        });
        self.submit(Job::ResetCounters { counters, reply }).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Advances a sequence counter on its own (the sequences route) and returns the new value.
    pub async fn allocate_counter(
        &self,
        table: &str,
        field: &str,
        rule: mishkah_core::sequence::SequenceRule,
    ) -> Result<i64, WriteError> {
        let key = mishkah_core::sequence::counter_key(&self.module, table, field);
        let (tx, rx) = oneshot::channel();
        let task = Box::new(move |db: &mut dyn ModuleWriter| {
            let result = (|| {
                let mut t = db.begin()?;
                let n = t.ops().next_counter(&key, &rule, &crate::clock::now_iso())?;
                t.commit()?;
                Ok::<_, StorageError>(n)
            })();
            let _ = tx.send(result.map_err(WriteError::from));
        });
        self.submit(Job::Maintenance(task)).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Makes sure `table` has its search index, building it through the writer on the first
    /// search (so it is consistent with every committed write, and kept by every later one).
    pub async fn ensure_search(&self, table: &mishkah_core::Table) -> Result<(), WriteError> {
        if self.searchable.lock().unwrap_or_else(|p| p.into_inner()).contains(&table.name) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let t = table.clone();
        let task = Box::new(move |db: &mut dyn ModuleWriter| {
            let _ = tx.send(db.enable_search(&t).map_err(WriteError::from));
        });
        self.submit(Job::Maintenance(task)).await?;
        rx.await.map_err(|_| WriteError::Unavailable)??;
        self.searchable.lock().unwrap_or_else(|p| p.into_inner()).insert(table.name.clone());
        Ok(())
    }

    /// Compacts the event log through `through`.
    pub async fn compact(&self, through: u64) -> Result<usize, WriteError> {
        let (tx, rx) = oneshot::channel();
        let task = Box::new(move |db: &mut dyn ModuleWriter| {
            let _ = tx.send(db.compact(through).map_err(WriteError::from));
        });
        self.submit(Job::Maintenance(task)).await?;
        rx.await.map_err(|_| WriteError::Unavailable)?
    }

    /// Runs a read on the module's read connection, off the async runtime.
    pub async fn read<T: Send + 'static, F>(self: &Arc<Self>, f: F) -> Result<T, StorageError>
    where
        F: FnOnce(&dyn ModuleRead, &Schema) -> Result<T, StorageError> + Send + 'static,
    {
        // One read transaction: every table and the log are read at the same commit.
        let run = |this: &ModuleHandle, f: F| {
            let mut f = Some(f);
            let mut out = None;
            this.readers.with(&mut |reader| {
                if let Some(f) = f.take() {
                    out = Some(consistent(reader, |r| f(r, &this.schema)));
                }
            })?;
            out.unwrap_or_else(|| Err(StorageError::Corrupt("no reader ran the read".into())))
        };
        let this = self.clone();
        tokio::task::spawn_blocking(move || run(&this, f))
            .await
            .map_err(|e| StorageError::Corrupt(format!("read task failed: {e}")))?
    }

    /// Publishes what other nodes committed through `head` (none: as far as the log goes).
    pub async fn catch_up(self: &Arc<Self>, head: Option<u64>) {
        let follower = self.follower.clone();
        let _ = tokio::task::spawn_blocking(move || follower.catch_up(head)).await;
    }

    /// The last committed sequence (the module version).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The rows of `table` that `who` may read by `action`, with `@request.source` = `source`.
    pub fn scope(&self, table: &str, action: Action, who: &Principal, source: &str) -> ReadScope {
        if self.access.is_open() {
            return ReadScope::All;
        }
        let bindings = who.bindings(&self.branch, &self.module, source);
        self.access.table(&self.module, table).read_scope(action, who, &bindings)
    }
}
