//! A module's read connections: one per core, so reads run side by side (WAL readers never block
//! each other or the writer) instead of queueing on one connection.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mishkah_store::{ModuleRead, ModuleReads, StorageError};

use super::module_db::ModuleReader;

pub(super) struct Readers {
    slots: Vec<Mutex<ModuleReader>>,
    next: AtomicUsize,
}

impl Readers {
    /// As many connections as the machine has cores (at least two).
    pub(super) fn open(path: &Path) -> Result<Readers, StorageError> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        let slots = (0..n).map(|_| ModuleReader::open(path).map(Mutex::new)).collect::<Result<_, _>>()?;
        Ok(Readers { slots, next: AtomicUsize::new(0) })
    }
}

impl ModuleReads for Readers {
    /// On a free connection, or the next one in turn once it is free.
    fn with(&self, f: &mut dyn FnMut(&dyn ModuleRead)) -> Result<(), StorageError> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(reader) = self.slots[(start + i) % n].try_lock() {
                f(&*reader);
                return Ok(());
            }
        }
        let reader = self.slots[start].lock().unwrap_or_else(|p| p.into_inner());
        f(&*reader);
        Ok(())
    }
}
