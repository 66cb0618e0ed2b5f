//! Which modules are open. Each holds a database, its readers and a writer thread, so their
//! number is capped (`--max-open-modules`): a module nobody holds (no request, no live query) is
//! closed once idle for a while, or sooner when room is needed, and reopened on demand. A closed
//! module's writer finishes what was queued and is joined before the module opens again, so one
//! database never has two writers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ModuleHandle;

pub(super) type Key = (String, String);

/// When a handle was last asked for, in milliseconds since the process's first use of it.
#[derive(Debug, Default)]
pub(super) struct LastUsed(AtomicU64);

fn since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl LastUsed {
    pub(super) fn touch(&self) {
        self.0.store(since_start(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(since_start().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

#[derive(Default)]
pub(super) struct OpenModules {
    handles: HashMap<Key, Arc<ModuleHandle>>,
    writers: HashMap<Key, JoinHandle<()>>,
    /// Modules closed since [`OpenModules::take_closed`] last asked, with their heads then: what
    /// they committed while open must still reach a backup target (one entry per module).
    closed: HashMap<Key, u64>,
}

impl OpenModules {
    pub(super) fn get(&self, key: &Key) -> Option<Arc<ModuleHandle>> {
        let handle = self.handles.get(key)?;
        handle.last_used.touch();
        Some(handle.clone())
    }

    /// Every open module, without counting it as used.
    pub(super) fn all(&self) -> Vec<Arc<ModuleHandle>> {
        self.handles.values().cloned().collect()
    }

    pub(super) fn len(&self) -> usize {
        self.handles.len()
    }

    pub(super) fn insert(&mut self, key: Key, handle: Arc<ModuleHandle>, writer: JoinHandle<()>) {
        handle.last_used.touch();
        self.handles.insert(key.clone(), handle);
        self.writers.insert(key, writer);
    }

    /// The writer of `key`'s previous opening (finishing or finished), to join before it opens
    /// again.
    pub(super) fn take_writer(&mut self, key: &Key) -> Option<JoinHandle<()>> {
        self.writers.remove(key)
    }

    /// Whether only this map holds `handle`: no request, session or live query is using it.
    fn unused(handle: &Arc<ModuleHandle>) -> bool {
        Arc::strong_count(handle) == 1
    }

    /// Closes the least recently used module nobody is using; `false` when every open module is
    /// in use.
    pub(super) fn close_least_used(&mut self) -> bool {
        let lru = self
            .handles
            .iter()
            .filter(|(_, h)| Self::unused(h))
            .max_by_key(|(_, h)| h.last_used.idle_for())
            .map(|(k, _)| k.clone());
        lru.is_some_and(|key| self.close(&key))
    }

    fn close(&mut self, key: &Key) -> bool {
        let Some(handle) = self.handles.remove(key) else { return false };
        self.closed.insert(key.clone(), handle.head());
        true
    }

    /// The modules closed since the last call, with their heads when they closed.
    pub(super) fn take_closed(&mut self) -> HashMap<Key, u64> {
        std::mem::take(&mut self.closed)
    }

    /// Closes every module nobody has used for `idle`; returns them.
    pub(super) fn close_idle(&mut self, idle: Duration) -> Vec<Key> {
        let idle: Vec<Key> = self
            .handles
            .iter()
            .filter(|(_, h)| Self::unused(h) && h.last_used.idle_for() >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &idle {
            self.close(key);
        }
        idle
    }

    /// Closes everything; returns the writers to join.
    pub(super) fn close_all(&mut self) -> Vec<JoinHandle<()>> {
        self.handles.clear();
        self.writers.drain().map(|(_, w)| w).collect()
    }
}
