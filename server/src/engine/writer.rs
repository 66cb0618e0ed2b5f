//! The writer thread of one module: group commit over the single write path.

use std::sync::Arc;
use std::time::Instant;

use mishkah_core::mutation::MutationError;
use mishkah_core::record::{MissingFields, Strictness, Values};
use mishkah_core::rules::RuleSet;
use mishkah_core::sequence::SequenceRules;
use mishkah_core::{Mutation, RecordKey, Schema, VersionPolicy};
use serde_json::Value;
use tokio::sync::mpsc;

use super::purge::purge;
use super::sender::Sender;
use super::write_one::{write_one, How, Now};
use super::{Committed, WriteError, WriteOutcome};
use crate::hub::Published;
use crate::metrics::Metrics;
use crate::storage::{ModuleWriter, Prefetch, WriteTxn};

/// Where a write's outcome goes. Called on the writer thread right after commit, in queue order,
/// so a connection that forwards outcomes through an ordered channel sees its acks in order.
pub type Reply = Box<dyn FnOnce(WriteOutcome) + Send>;

/// One mutation to write.
pub struct WriteJob {
    pub mutation: Mutation,
    /// `ws`, `rest`, `seed`, `restore`...
    pub source: &'static str,
    /// Client meta, logged with the event and echoed in frames.
    pub meta: Value,
    /// Client write or import.
    pub strictness: Strictness,
    /// Who writes: the rules are checked against the stored row, inside the transaction.
    pub sender: Sender,
    /// Where the outcome goes.
    pub reply: Reply,
}

/// Work for the writer.
pub enum Job {
    /// One mutation (grouped with others into one transaction).
    Write(WriteJob),
    /// Several mutations that commit together or not at all.
    Atomic {
        mutations: Vec<Mutation>,
        source: &'static str,
        meta: Value,
        /// Client writes or an import (seed, restore).
        strictness: Strictness,
        /// Who writes.
        sender: Sender,
        /// Checked inside the transaction before the first write: what the batch assumes of the
        /// stored state (the batch route's `lastAckId`), so no other write can slip in between.
        precondition: Option<Precondition>,
        /// Outcome per mutation, or the first failure.
        reply: Box<dyn FnOnce(Result<Vec<Committed>, WriteError>) + Send>,
    },
    /// Mutations a plan decides inside the transaction, on what is stored, then written together
    /// or not at all ([`super::plan`]). A failure is the failing mutation's own error.
    Planned {
        plan: super::plan::Planner,
        source: &'static str,
        meta: Value,
        sender: Sender,
        reply: Box<dyn FnOnce(Result<Vec<Committed>, WriteError>) + Send>,
    },
    /// Copies every row of `tables` into the history archive `archive`, then deletes them through
    /// the write path (so every deletion is logged and broadcast), all in one savepoint.
    Purge {
        /// Tables to purge.
        tables: Vec<String>,
        /// Archive name.
        archive: String,
        /// Rows purged, or why nothing was.
        reply: Box<dyn FnOnce(Result<Vec<Committed>, WriteError>) + Send>,
    },
    /// Forgets every counter and sets these (reset to seed).
    ResetCounters {
        /// `module:table:field` → last.
        counters: std::collections::BTreeMap<String, i64>,
        /// Done.
        reply: Box<dyn FnOnce(Result<(), WriteError>) + Send>,
    },
    /// Work on the database itself (compaction, marking it seeded), run after the batch commits.
    Maintenance(Maintenance),
}

/// Work on the store itself, in order with the writes.
pub type Maintenance = Box<dyn FnOnce(&mut dyn ModuleWriter) + Send>;

/// A check of the stored state an atomic batch runs inside its transaction before writing.
pub type Precondition = Box<dyn FnOnce(&mut dyn WriteTxn) -> Result<(), WriteError> + Send>;

/// What the writer needs besides its database.
pub(super) struct WriterContext {
    pub branch: String,
    pub module: String,
    pub schema: Arc<Schema>,
    pub rules: Arc<SequenceRules>,
    pub access: Arc<RuleSet>,
    pub policy: Arc<VersionPolicy>,
    /// Publishes in the log's order (after what other nodes committed before).
    pub follower: Arc<super::follower::Follower>,
    pub metrics: Arc<Metrics>,
    pub head: Arc<std::sync::atomic::AtomicU64>,
    pub missing_fields: MissingFields,
    pub values: Values,
    /// The `(table, field, rule)`s already warned about: a value stored as sent is logged once
    /// per kind, then only counted.
    pub warned: std::sync::Mutex<std::collections::HashSet<(String, String, String)>>,
    /// Whether the last commit failed (so health is told once when it fails and once when it
    /// recovers, not on every batch).
    pub failing: std::sync::atomic::AtomicBool,
}

const MAX_BATCH: usize = 1024;

/// Runs until every sender is gone.
pub(super) fn run(mut db: Box<dyn ModuleWriter>, ctx: WriterContext, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut *db, &ctx, batch);
        db.between_batches();
    }
    // The store's background work (SQLite's checkpointer) ends with it.
    drop(db);
    tracing::info!(branch = %ctx.branch, module = %ctx.module, "writer stopped");
}

enum Done {
    Write(Reply, WriteOutcome, &'static str, Value),
    Atomic(
        Box<dyn FnOnce(Result<Vec<Committed>, WriteError>) + Send>,
        Result<Vec<Committed>, WriteError>,
        &'static str,
        Value,
    ),
    Unit(Box<dyn FnOnce(Result<(), WriteError>) + Send>, Result<(), WriteError>),
}

fn run_batch(db: &mut dyn ModuleWriter, ctx: &WriterContext, batch: Vec<Job>) {
    let started = Instant::now();
    let now = Now::new(crate::clock::now());
    let size = batch.len();
    let mut maintenance = Vec::new();
    let mut tx = match db.begin() {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(branch = %ctx.branch, module = %ctx.module, error = %e, "cannot begin a transaction");
            let message = e.to_string();
            for job in batch {
                if let Some(done) = job_into_done(job) {
                    fail(done, &message);
                }
            }
            return;
        }
    };
    prefetch(tx.ops(), ctx, &batch);
    let mut done = Vec::with_capacity(batch.len());
    let mut not_run = Vec::new();
    let mut aborted: Option<String> = None;
    for job in batch {
        if aborted.is_some() {
            // SQLite rolled the whole transaction back (disk full, I/O error): running more
            // statements now would commit them one by one behind our back.
            not_run.push(job);
            continue;
        }
        match job {
            Job::Maintenance(task) => maintenance.push(task),
            job => done.push(run_job(tx.ops(), ctx, job, &now)),
        }
        if !tx.ops().in_transaction() {
            aborted = Some(last_storage_error(&done).unwrap_or_else(|| "the transaction was rolled back".into()));
        }
    }
    let committed = match &aborted {
        Some(cause) => {
            drop(tx);
            Err(cause.clone())
        }
        None => tx.commit().map_err(|e| e.to_string()),
    };
    if let Err(message) = committed {
        // Nothing was stored, so nothing is acknowledged as written or published.
        tracing::error!(branch = %ctx.branch, module = %ctx.module, error = %message, "commit failed");
        ctx.failing.store(true, std::sync::atomic::Ordering::Relaxed);
        ctx.metrics.commits_failing(&ctx.branch, &ctx.module, Some(&message));
        for item in done {
            fail(item, &message);
        }
        for job in not_run {
            if let Some(item) = job_into_done(job) {
                fail(item, &message);
            }
        }
        // Maintenance does not depend on the failed writes; it runs on its own.
        for task in maintenance {
            task(db);
        }
        return;
    }
    ctx.head.store(db.head(), std::sync::atomic::Ordering::Release);
    ctx.metrics.observe_commit(started.elapsed(), size);
    if ctx.failing.swap(false, std::sync::atomic::Ordering::Relaxed) {
        ctx.metrics.commits_failing(&ctx.branch, &ctx.module, None);
    }
    for item in done {
        acknowledge(ctx, item);
    }
    for task in maintenance {
        task(db);
    }
}

/// Runs one job (not maintenance) inside the batch's transaction; a job of several writes runs
/// in a savepoint, so that it commits whole or not at all.
fn run_job(txn: &mut dyn WriteTxn, ctx: &WriterContext, job: Job, now: &Now) -> Done {
    // The changes a job commits together share one transaction id, in the log and in frames.
    let transaction_id = || format!("txn-{}", uuid::Uuid::new_v4().simple());
    match job {
        Job::Write(job) => {
            // No savepoint: `write_one` refuses before its first change or not at all (see there).
            let how = How {
                source: job.source,
                meta: &job.meta,
                strictness: job.strictness,
                sender: &job.sender,
                transaction: None,
            };
            let outcome = write_one(txn, ctx, &job.mutation, &how, now);
            Done::Write(job.reply, outcome, job.source, job.meta)
        }
        Job::Atomic { mutations, source, meta, strictness, sender, precondition, reply } => {
            let id = transaction_id();
            let how = How { source, meta: &meta, strictness, sender: &sender, transaction: Some(&id) };
            let outcome = in_savepoint(txn, |txn| {
                if let Some(check) = precondition {
                    check(&mut *txn)?;
                }
                let mut out = Vec::with_capacity(mutations.len());
                for (index, m) in mutations.iter().enumerate() {
                    match write_one(txn, ctx, m, &how, now) {
                        Ok(c) => out.push(c),
                        Err(e) => return Err(WriteError::aborted_by(index, e)),
                    }
                }
                Ok(out)
            });
            Done::Atomic(reply, outcome, source, meta)
        }
        Job::Planned { plan, source, meta, sender, reply } => {
            let id = transaction_id();
            let how =
                How { source, meta: &meta, strictness: Strictness::Strict, sender: &sender, transaction: Some(&id) };
            let outcome = in_savepoint(txn, |txn| {
                let mutations = plan(&mut super::plan::PlanReads {
                    txn: &mut *txn,
                    schema: &ctx.schema,
                    rules: &ctx.rules,
                    branch: &ctx.branch,
                    module: &ctx.module,
                    now_iso: &now.iso,
                })?;
                mutations.iter().map(|m| write_one(txn, ctx, m, &how, now)).collect()
            });
            Done::Atomic(reply, outcome, source, meta)
        }
        Job::Purge { tables, archive, reply } => {
            let id = transaction_id();
            let outcome = in_savepoint(txn, |txn| purge(txn, ctx, &tables, &archive, now, &id));
            Done::Atomic(reply, outcome, "purge", Value::Null)
        }
        Job::ResetCounters { counters, reply } => {
            let outcome = in_savepoint(txn, |txn| Ok(txn.reset_counters(&counters, &now.iso)?));
            Done::Unit(reply, outcome)
        }
        Job::Maintenance(_) => unreachable!("maintenance runs after the batch commits"),
    }
}

/// After the commit: each job's reply, then its changes to the hub. The writer's own ack is
/// queued before the event is published, so a publisher sees `server:ack` before its `server:event`.
fn acknowledge(ctx: &WriterContext, item: Done) {
    match item {
        Done::Write(reply, outcome, source, meta) => {
            count(ctx, outcome.as_ref().err());
            let publishing = outcome.as_ref().ok().filter(|c| !c.replayed).cloned();
            reply(outcome);
            if let Some(c) = publishing {
                publish(ctx, &c, source, &meta, true);
            }
        }
        Done::Atomic(reply, outcome, source, meta) => {
            count(ctx, outcome.as_ref().err());
            let publishing: Vec<Committed> =
                outcome.as_ref().map(|l| l.iter().filter(|c| !c.replayed).cloned().collect()).unwrap_or_default();
            reply(outcome);
            for (i, c) in publishing.iter().enumerate() {
                publish(ctx, c, source, &meta, i + 1 == publishing.len());
            }
        }
        Done::Unit(reply, outcome) => reply(outcome),
    }
}

/// The message of the last storage failure among the outcomes (the cause of an abort).
fn last_storage_error(done: &[Done]) -> Option<String> {
    done.iter().rev().find_map(|d| match d {
        Done::Write(_, Err(e @ (WriteError::Storage(_) | WriteError::CommitFailed(_))), ..) => Some(e.to_string()),
        Done::Atomic(_, Err(e), ..) => Some(e.to_string()),
        Done::Unit(_, Err(e)) => Some(e.to_string()),
        _ => None,
    })
}

/// A job that did not run, as a failed outcome (maintenance is simply skipped).
fn job_into_done(job: Job) -> Option<Done> {
    match job {
        Job::Write(j) => Some(Done::Write(j.reply, Err(WriteError::Unavailable), j.source, j.meta)),
        Job::Atomic { reply, source, meta, .. } => {
            Some(Done::Atomic(reply, Err(WriteError::Unavailable), source, meta))
        }
        Job::Planned { reply, source, meta, .. } => {
            Some(Done::Atomic(reply, Err(WriteError::Unavailable), source, meta))
        }
        Job::Purge { reply, .. } => Some(Done::Atomic(reply, Err(WriteError::Unavailable), "purge", Value::Null)),
        Job::ResetCounters { reply, .. } => Some(Done::Unit(reply, Err(WriteError::Unavailable))),
        Job::Maintenance(_) => None,
    }
}

fn fail(item: Done, message: &str) {
    let err = || WriteError::CommitFailed(message.to_owned());
    match item {
        Done::Write(reply, ..) => reply(Err(err())),
        Done::Atomic(reply, ..) => reply(Err(err())),
        Done::Unit(reply, _) => reply(Err(err())),
    }
}

fn count(ctx: &WriterContext, error: Option<&WriteError>) {
    match error {
        None => ctx.metrics.writes.inc(),
        Some(WriteError::Mutation(MutationError::Conflict(_))) => ctx.metrics.conflicts.inc(),
        Some(_) => ctx.metrics.write_errors.inc(),
    };
}

/// Hands a committed change to the hub; `txn_end`: the last of its job's changes.
fn publish(ctx: &WriterContext, c: &Committed, source: &'static str, meta: &Value, txn_end: bool) {
    let note = Published {
        branch: ctx.branch.clone(),
        module: ctx.module.clone(),
        event: c.event.clone(),
        primary_key: c.primary_key.clone(),
        source,
        client_meta: meta.clone(),
        schema: ctx.schema.clone(),
        access: ctx.access.clone(),
        previous: c.previous.clone(),
        table_as_sent: c.table_as_sent.clone(),
        txn_end,
        handed_at: std::time::Instant::now(),
    };
    ctx.follower.local(note);
}

fn in_savepoint<T>(
    txn: &mut dyn WriteTxn,
    f: impl FnOnce(&mut dyn WriteTxn) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    txn.savepoint()?;
    match f(txn) {
        Ok(v) => {
            txn.release()?;
            Ok(v)
        }
        Err(e) => {
            // If SQLite already rolled the whole transaction back (disk full), the savepoint is
            // gone too; the original error is the one worth reporting, and the batch is aborted.
            let _ = txn.rollback_to();
            Err(e)
        }
    }
}

/// Names the rows and mutation ids the batch's writes will read first, so that a store paying a
/// round trip per read (PostgreSQL) reads them all at once.
fn prefetch<'a>(txn: &mut dyn WriteTxn, ctx: &'a WriterContext, batch: &'a [Job]) {
    let mut wants = Prefetch::default();
    let mut want = |m: &'a Mutation, sender: &'a Sender| {
        let Some(table) = ctx.schema.resolve_table(&m.table) else { return };
        if let Ok(key) = RecordKey::of(table, &m.record) {
            wants.rows.push((table, key));
        }
        if let Some(id) = &m.mutation_id {
            wants.mutations.push((sender.dedup_scope(), id));
        }
    };
    for job in batch {
        match job {
            Job::Write(job) => want(&job.mutation, &job.sender),
            Job::Atomic { mutations, sender, .. } => mutations.iter().for_each(|m| want(m, sender)),
            _ => {}
        }
    }
    if wants.is_empty() {
        return;
    }
    if let Err(e) = txn.prefetch(&wants) {
        // The writes then read one by one, or fail with the store.
        tracing::warn!(branch = %ctx.branch, module = %ctx.module, error = %e, "prefetch failed");
    }
}
