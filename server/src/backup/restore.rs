//! `mishkah restore`: a new data directory from a target — the nearest snapshot before the point
//! asked for, then the shipped log replayed up to exactly that sequence or time, every event as
//! it was logged (sequences, event ids, mutation ids), so clients resume from their cursors and
//! retries are still recognised.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, FixedOffset};
use mishkah_core::Table;
use tokio::runtime::Handle;

use super::segment::{self, Segment};
use super::snapshot::{self, Manifest};
use super::{block_on, BackupError, Progress, Target, Unit};
use crate::datadir::DataDir;
use crate::storage::{Backend, LoggedEvent, ModuleWriter};

/// How far a restore goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Until {
    /// Everything the target holds.
    Latest,
    /// Through this sequence of the one module restored.
    Sequence(u64),
    /// Every event committed at or before this time.
    Time(DateTime<FixedOffset>),
}

impl Until {
    /// Whether `event` is past the point.
    fn passed(&self, event: &LoggedEvent) -> bool {
        match self {
            Until::Latest => false,
            Until::Sequence(n) => event.event.sequence > *n,
            Until::Time(t) => DateTime::parse_from_rfc3339(&event.event.created_at).is_ok_and(|at| at > *t),
        }
    }
}

/// What a restore did, per module: `(branch, module, snapshot head, restored head)`.
#[derive(Debug, Clone)]
pub struct Restored {
    pub snapshot: Manifest,
    pub modules: Vec<(String, String, u64, u64)>,
}

/// Makes the data directory `to` (absent or empty) from `target`: `only` one module (with the
/// configuration), or all; up to `until`. Nothing stays in `to` when it fails. Blocks.
pub fn restore(
    target: &Target,
    runtime: &Handle,
    backend: &dyn Backend,
    to: &Path,
    only: Option<(&str, &str)>,
    until: &Until,
    progress: &Progress,
) -> Result<Restored, BackupError> {
    if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(BackupError::TargetNotEmpty(to.to_path_buf()));
    }
    if matches!(until, Until::Sequence(_)) && only.is_none() {
        return Err(BackupError::Request(
            "--to-seq names a sequence of one module's log: give --branch and --module too".into(),
        ));
    }
    let snapshots = block_on(runtime, snapshot::list(target))?;
    let chosen = choose(&snapshots, only, until).cloned().ok_or_else(|| {
        BackupError::NoSnapshot(
            target.name.clone(),
            if *until == Until::Latest { String::new() } else { " before that point".into() },
        )
    })?;
    let restored = (|| {
        snapshot::fetch(target, runtime, &chosen, to, only, progress)?;
        let data = DataDir::load(to)?;
        let mut modules = Vec::new();
        for (branch, module) in modules_to_replay(target, runtime, &chosen, only)? {
            let from = chosen.head_of(&branch, &module).unwrap_or(0);
            let head = replay(target, runtime, backend, &data, (&branch, &module), from, until, progress)?;
            progress.note(&format!("{branch}/{module}: snapshot through {from}, log replayed through {head}"));
            modules.push((branch, module, from, head));
        }
        Ok(Restored { snapshot: chosen.clone(), modules })
    })();
    if restored.is_err() {
        let _ = std::fs::remove_dir_all(to);
    }
    restored
}

/// The newest snapshot before the point.
fn choose<'a>(snapshots: &'a [Manifest], only: Option<(&str, &str)>, until: &Until) -> Option<&'a Manifest> {
    snapshots.iter().rev().find(|m| match (until, only) {
        (Until::Latest, _) => true,
        (Until::Sequence(n), Some((b, module))) => m.head_of(b, module).unwrap_or(0) <= *n,
        (Until::Sequence(_), None) => false,
        (Until::Time(t), _) => DateTime::parse_from_rfc3339(&m.created_at).is_ok_and(|at| at <= *t),
    })
}

/// The snapshot's modules and those with a shipped log (created after it), or just `only`.
fn modules_to_replay(
    target: &Target,
    runtime: &Handle,
    snapshot: &Manifest,
    only: Option<(&str, &str)>,
) -> Result<BTreeSet<(String, String)>, BackupError> {
    if let Some((b, m)) = only {
        return Ok(BTreeSet::from([(b.to_owned(), m.to_owned())]));
    }
    let mut modules: BTreeSet<_> = snapshot.modules.iter().map(|m| (m.branch.clone(), m.module.clone())).collect();
    for branch in block_on(runtime, target.folders("log"))? {
        for module in block_on(runtime, target.folders(&format!("log/{branch}")))? {
            modules.insert((branch.clone(), module));
        }
    }
    Ok(modules)
}

/// Replays a module's shipped log after `from` up to `until`; the head it ends at.
#[allow(clippy::too_many_arguments)]
fn replay(
    target: &Target,
    runtime: &Handle,
    backend: &dyn Backend,
    data: &DataDir,
    (branch, module): (&str, &str),
    from: u64,
    until: &Until,
    progress: &Progress,
) -> Result<u64, BackupError> {
    let gap =
        |missing: u64, held: u64| BackupError::Gap { branch: branch.into(), module: module.into(), missing, held };
    let objects = block_on(runtime, target.list(&segment::folder(branch, module)))?;
    let mut spans: Vec<(u64, u64, String)> = objects
        .into_iter()
        .filter_map(|o| segment::span_of(&o.key).map(|(first, last)| (first, last, o.key)))
        .filter(|(_, last, _)| *last > from)
        .collect();
    spans.sort();
    let held = spans.last().map_or(from, |s| s.1);
    if let Until::Sequence(n) = until {
        if *n > held {
            return Err(gap(held + 1, held));
        }
    }
    let (opened, mut tables) = crate::migrate::open(backend, data, branch, module)?;
    let mut writer = opened.writer;
    if writer.head() != from {
        return Err(BackupError::Request(format!(
            "{branch}/{module}: the snapshot's store holds sequence {} where its manifest says {from}",
            writer.head()
        )));
    }
    let mut head = from;
    progress.step(&format!("{branch}/{module}: replaying"), spans.len() as u64, Unit::Segments);
    for (first, _, key) in spans {
        if first > head + 1 {
            return Err(gap(head + 1, held));
        }
        let bytes = block_on(runtime, target.get(&key))?.ok_or_else(|| gap(head + 1, held))?;
        let segment = Segment::decode(&bytes)?;
        let (applied, stopped) = apply(&mut *writer, &mut tables, segment, head, until)?;
        head = applied;
        progress.advance(1);
        if stopped {
            break;
        }
    }
    if from == 0 && head > 0 {
        writer.mark_initialized(&crate::clock::now_iso())?;
    }
    progress.finish();
    Ok(head)
}

/// Applies a segment's events after `head` (the rows and the log, in one transaction) up to
/// `until`, then its counters; the new head, and whether `until` was reached.
fn apply(
    writer: &mut dyn ModuleWriter,
    tables: &mut Vec<Table>,
    segment: Segment,
    head: u64,
    until: &Until,
) -> Result<(u64, bool), BackupError> {
    let counters = segment.counters;
    let mut events = Vec::new();
    let mut stopped = false;
    for shipped in segment.events {
        let logged = LoggedEvent::try_from(shipped)?;
        if logged.event.sequence <= head {
            continue;
        }
        if until.passed(&logged) {
            stopped = true;
            break;
        }
        events.push(logged);
    }
    for name in events.iter().map(|l| &l.event.change.table) {
        if !tables.iter().any(|t| &t.name == name) {
            let table = crate::engine::seed::adhoc_table(name);
            writer.add_adhoc_table(&table)?;
            tables.push(table);
        }
    }
    let mut new_head = head;
    let now = crate::clock::now_iso();
    let mut tx = writer.begin()?;
    for logged in &events {
        if logged.event.sequence != new_head + 1 {
            return Err(BackupError::Gap {
                branch: segment.branch,
                module: segment.module,
                missing: new_head + 1,
                held: segment.last,
            });
        }
        let table = tables.iter().find(|t| t.name == logged.event.change.table).expect("added above");
        if let Some((archive, row)) = crate::engine::purge::archived(logged) {
            tx.ops().archive_row(archive, table, &logged.event.change.key, row, &logged.event.created_at)?;
        }
        tx.ops().store_change(table, &logged.event.change)?;
        tx.ops().import_event(logged)?;
        new_head = logged.event.sequence;
    }
    // The counters as of the segment's end: never below what the rows restored used (numbers
    // given after the point are not given again).
    if new_head > head {
        for (key, last) in &counters {
            tx.ops().set_counter(key, *last, &now)?;
        }
    }
    tx.commit()?;
    Ok((new_head, stopped))
}
