//! What a module publishes, in the log's order, whichever node committed it.
//!
//! A node publishes its own commits from memory as soon as they commit. When several nodes write
//! one module (PostgreSQL), the log may hold events this node did not commit: before publishing a
//! change, and whenever the backend says another node committed, the follower reads what it has
//! not delivered yet from the log — which keeps everything a reader needs — and publishes it
//! first. So every subscriber gets every event once, in sequence order; a lost notification only
//! delays (the next one, or the periodic check, reads the log from where delivery stopped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mishkah_core::rules::RuleSet;
use mishkah_core::Schema;
use tokio::sync::mpsc;

use crate::hub::Published;
use crate::storage::{consistent, Before, LoggedEvent, ModuleReads, StorageError};

/// Events read from the log at a time while catching up.
const PAGE: usize = 1000;

pub(crate) struct Follower {
    /// The last sequence handed to the hub.
    delivered: Mutex<u64>,
    reads: Arc<dyn ModuleReads>,
    head: Arc<AtomicU64>,
    branch: String,
    module: String,
    schema: Arc<Schema>,
    access: Arc<RuleSet>,
    publish: mpsc::UnboundedSender<Published>,
}

impl Follower {
    pub(super) fn new(
        (branch, module): (&str, &str),
        head: Arc<AtomicU64>,
        reads: Arc<dyn ModuleReads>,
        (schema, access): (Arc<Schema>, Arc<RuleSet>),
        publish: mpsc::UnboundedSender<Published>,
    ) -> Follower {
        Follower {
            delivered: Mutex::new(head.load(Ordering::Acquire)),
            reads,
            head,
            branch: branch.to_owned(),
            module: module.to_owned(),
            schema,
            access,
            publish,
        }
    }

    /// Publishes a change this node committed, after whatever was committed before it elsewhere;
    /// nothing if the log already delivered it.
    pub(super) fn local(&self, note: Published) {
        let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = note.event.sequence;
        if sequence <= *delivered {
            return;
        }
        if sequence > *delivered + 1 {
            self.deliver_logged(&mut delivered, sequence - 1);
        }
        let _ = self.publish.send(note);
        *delivered = sequence;
        self.head.fetch_max(sequence, Ordering::AcqRel);
    }

    /// Publishes what was committed elsewhere through `head` (none: as far as the log goes).
    /// Blocks on reads: call it off the async runtime.
    pub(super) fn catch_up(&self, head: Option<u64>) {
        let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
        let upto = match head {
            Some(h) => h,
            None => match self.read(|r| r.bounds()) {
                Ok((_, h)) => h,
                Err(e) => return tracing::warn!(branch = %self.branch, module = %self.module, error = %e, "catch-up"),
            },
        };
        self.deliver_logged(&mut delivered, upto);
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&dyn crate::storage::ModuleRead) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut f = Some(f);
        let mut out = None;
        self.reads.with(&mut |reader| {
            if let Some(f) = f.take() {
                out = Some(consistent(reader, f));
            }
        })?;
        out.unwrap_or_else(|| Err(StorageError::Corrupt("no reader ran the read".into())))
    }

    /// Publishes the logged events after `delivered` through `upto`. Each is published once the
    /// next is read, so the hub learns which ends its transaction (the log keeps only its id); a
    /// transaction is committed whole, so the event at `upto` ends one.
    fn deliver_logged(&self, delivered: &mut u64, upto: u64) {
        let mut held: Option<LoggedEvent> = None;
        let mut after = *delivered;
        while after < upto {
            let page = self.read(|r| r.logged_after(after, PAGE.min((upto - after) as usize)));
            let events = match page {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(branch = %self.branch, module = %self.module, error = %e, "reading the log to catch up");
                    break;
                }
            };
            for logged in events {
                if logged.event.sequence > upto {
                    after = upto;
                    break;
                }
                after = logged.event.sequence;
                if let Some(previous) = held.replace(logged) {
                    let next = held.as_ref().and_then(|l| l.event.transaction_id.as_deref());
                    let ends =
                        previous.event.transaction_id.is_none() || previous.event.transaction_id.as_deref() != next;
                    *delivered = previous.event.sequence;
                    let _ = self.publish.send(self.published(previous, ends));
                }
            }
        }
        if let Some(last) = held {
            *delivered = last.event.sequence;
            let _ = self.publish.send(self.published(last, true));
        }
        self.head.fetch_max(*delivered, Ordering::AcqRel);
    }

    /// A logged event as the hub takes it: what the committing node published from memory.
    fn published(&self, logged: LoggedEvent, txn_end: bool) -> Published {
        let LoggedEvent { event, before, source, meta, table_as_sent, .. } = logged;
        let previous = match before {
            Before::Row(row) => Some(Arc::new(row)),
            Before::Absent | Before::NotKept => None,
        };
        let table = self.schema.table(&event.change.table);
        let keyed = event.change.row.as_ref().or(previous.as_deref());
        let primary_key = match (table, keyed) {
            (Some(t), Some(row)) => super::write_one::key_values(t, row),
            _ => serde_json::Map::new(),
        };
        Published {
            branch: self.branch.clone(),
            module: self.module.clone(),
            event: Arc::new(event),
            primary_key,
            source: source_name(&source),
            client_meta: meta,
            schema: self.schema.clone(),
            access: self.access.clone(),
            previous,
            table_as_sent: table_as_sent.map(Arc::from),
            txn_end,
            handed_at: std::time::Instant::now(),
        }
    }
}

/// The source of a logged write, as the hub's frames name it.
fn source_name(source: &str) -> &'static str {
    match source {
        "ws" => "ws",
        "rest" => "rest",
        "seed" => "seed",
        "purge" => "purge",
        "restore" => "restore",
        "orders" => "orders",
        "topic" => "topic",
        "sync" => "sync",
        _ => "remote",
    }
}
