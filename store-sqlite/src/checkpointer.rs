//! The checkpointer thread of a module's writer.

use std::sync::Arc;

/// Moves committed WAL pages into the database file from its own thread and connection, so no
/// write waits for it (`PASSIVE` never blocks the writer or readers). The writer's connection has
/// automatic checkpoints off. While writes keep coming this thread never quite catches up (the
/// writer appends during its run), and the log can only start over from its beginning once a
/// checkpoint has caught up; so after each run it raises `behind`, and the writer checkpoints the
/// few frames left between two batches. Without that the log grows for as long as the load lasts.
pub(super) struct Checkpointer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub(super) behind: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn spawn(
        path: std::path::PathBuf,
        head: Arc<std::sync::atomic::AtomicU64>,
        (branch, module): (&str, &str),
        interval: std::time::Duration,
    ) -> Checkpointer {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let behind = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, lagging) = (stop.clone(), behind.clone());
        let (branch, module) = (branch.to_owned(), module.to_owned());
        let thread = std::thread::Builder::new()
            .name(format!("checkpoint-{branch}-{module}"))
            .spawn(move || {
                let mut done_through = head.load(Ordering::Acquire);
                loop {
                    std::thread::park_timeout(interval);
                    let stopping = flag.load(Ordering::Acquire);
                    let now = head.load(Ordering::Acquire);
                    if now != done_through || stopping {
                        match super::module_db::checkpoint(&path) {
                            // Complete or not, the writer has appended since: only it can finish.
                            Ok(progress) => lagging.store(progress.frames > 0, Ordering::Release),
                            // Not fatal: the WAL keeps every committed write; the next round retries.
                            Err(e) => tracing::warn!(%branch, %module, error = %e, "checkpoint failed"),
                        }
                        done_through = now;
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .ok();
        Checkpointer { stop, behind, thread }
    }

    pub(super) fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
