//! A session's writes: a `client:publish` or `client:transaction` handed to its module's writer
//! (the one write path), and the answers owed for them, delivered back in commit order and
//! rendered as the writer may see them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mishkah_core::record::Strictness;
use mishkah_core::wire::{ClientPublish, CommitSite, ServerFrame, TransactionRequest};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::frames::text;
use super::session::Session;
use crate::engine::{Job, ModuleHandle, WriteError, WriteJob, WriteOutcome};

/// An answer owed to this connection, delivered by the writer in commit order.
pub(super) enum Answer {
    Write(Outcome),
    /// What it committed, its `requestId`, whether to put the rows in the answer, its module.
    Transaction(Result<Vec<crate::engine::Committed>, WriteError>, Option<Value>, bool, Arc<ModuleHandle>),
}

/// The outcome of a `client:publish`.
pub(super) struct Outcome {
    outcome: WriteOutcome,
    module: Arc<ModuleHandle>,
    request_id: Option<Value>,
    mutation_id: Option<String>,
    include_record: bool,
    meta: Value,
}

/// Writes a connection may have submitted and not yet had answered by the writer, and the bytes
/// of the frames they came in: past either, the session reads no more frames until answers come
/// back, so a client pipelining without end waits on its own socket (TCP pushes back) instead of
/// filling the server's memory. Enough to fill the writer's group commits.
pub(super) const MAX_IN_FLIGHT: usize = 512;
pub(super) const MAX_IN_FLIGHT_BYTES: usize = 4 << 20;

/// The acks owed to this connection, delivered by the writer in commit order. The channel opens
/// with the session's first write: most connections never write, and a channel costs ~800 bytes
/// before it carries anything. Its items are boxed for the same reason (its blocks hold 32).
#[derive(Default)]
pub(super) struct Owed {
    tx: Option<mpsc::UnboundedSender<Box<Answer>>>,
    rx: Option<mpsc::UnboundedReceiver<Box<Answer>>>,
    /// Opened with the channel.
    in_flight: Option<Arc<InFlight>>,
    /// The length of the frame being handled: what a write it submits weighs.
    pub(super) reading: usize,
}

#[derive(Default)]
pub(super) struct InFlight {
    writes: AtomicUsize,
    bytes: AtomicUsize,
}

/// Where one submitted write's answer goes; counted in flight until the writer is done with it
/// (answered, or the job dropped unsubmitted).
pub(super) struct Debt {
    tx: mpsc::UnboundedSender<Box<Answer>>,
    in_flight: Arc<InFlight>,
    bytes: usize,
}

impl Debt {
    /// Hands the answer to the session; the session may be gone, and the write stands either way.
    fn pay(&self, answer: Answer) {
        let _ = self.tx.send(Box::new(answer));
    }
}

impl Drop for Debt {
    fn drop(&mut self) {
        self.in_flight.writes.fetch_sub(1, Ordering::AcqRel);
        self.in_flight.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Owed {
    fn debt(&mut self) -> Debt {
        let tx = match &self.tx {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.rx = Some(rx);
                self.tx.insert(tx).clone()
            }
        };
        let in_flight = self.in_flight.get_or_insert_with(Arc::default).clone();
        in_flight.writes.fetch_add(1, Ordering::AcqRel);
        in_flight.bytes.fetch_add(self.reading, Ordering::AcqRel);
        Debt { tx, in_flight, bytes: self.reading }
    }

    /// Whether the session may read another frame.
    pub(super) fn has_room(&self) -> bool {
        self.in_flight.as_ref().is_none_or(|n| {
            n.writes.load(Ordering::Acquire) < MAX_IN_FLIGHT && n.bytes.load(Ordering::Acquire) < MAX_IN_FLIGHT_BYTES
        })
    }

    pub(super) fn try_recv(&mut self) -> Option<Box<Answer>> {
        self.rx.as_mut()?.try_recv().ok()
    }

    /// The next ack; never ends while the session holds the sender.
    pub(super) async fn next(&mut self) -> Option<Box<Answer>> {
        match &mut self.rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

impl Session {
    pub(super) async fn publish(&mut self, p: ClientPublish) -> Vec<String> {
        let mutation = match p.to_mutation() {
            Ok(m) => m,
            Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, p.request_id, p.mutation_id),
        };
        if self.branch.is_none() {
            return self.not_registered(p.request_id);
        }
        let handle = match self.target(p.module_id.as_deref()).await {
            Ok(h) => h,
            Err((code, message)) => {
                return self.error(&code, &message, Value::Null, p.request_id, mutation.mutation_id)
            }
        };
        let mut meta = p.meta.clone().unwrap_or_else(|| json!({}));
        if let (Some(obj), Some(rid)) = (meta.as_object_mut(), &p.request_id) {
            obj.entry("requestId").or_insert(rid.clone());
        }
        let owed = self.owed.debt();
        let (request_id, mutation_id, include_record) =
            (p.request_id.clone(), mutation.mutation_id.clone(), p.include_record);
        let module = handle.clone();
        let reply_meta = meta.clone();
        let reply = Box::new(move |outcome| {
            owed.pay(Answer::Write(Outcome {
                outcome,
                module,
                request_id,
                mutation_id,
                include_record,
                meta: reply_meta,
            }));
        });
        let sender = self.caller.sender();
        let job = Job::Write(WriteJob { mutation, source: "ws", meta, strictness: Strictness::Strict, sender, reply });
        if let Err(e) = handle.submit(job).await {
            return self.error(e.code(), &e.to_string(), Value::Null, p.request_id, p.mutation_id);
        }
        Vec::new()
    }

    pub(super) async fn transaction(&mut self, request: TransactionRequest) -> Vec<String> {
        if self.branch.is_none() {
            return self.not_registered(request.request_id);
        }
        let handle = match self.target(request.module_id.as_deref()).await {
            Ok(h) => h,
            Err((code, message)) => return self.error(&code, &message, Value::Null, request.request_id, None),
        };
        let owed = self.owed.debt();
        let (request_id, rows, module) = (request.request_id.clone(), request.include_records, handle.clone());
        let answered = request_id.clone();
        let reply = Box::new(move |outcome| owed.pay(Answer::Transaction(outcome, answered, rows, module)));
        let submitted = match crate::transactions::job(&handle, &self.caller, request, "ws", reply) {
            Ok(job) => handle.submit(job).await,
            Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, request_id, None),
        };
        if let Err(e) = submitted {
            return self.error(e.code(), &e.to_string(), Value::Null, request_id, None);
        }
        Vec::new()
    }

    pub(super) fn render_answer(&self, answer: Box<Answer>) -> Vec<String> {
        match *answer {
            Answer::Write(o) => self.render_outcome(o),
            Answer::Transaction(Ok(committed), request_id, rows, module) => {
                let view = rows.then(|| crate::access::View::of(&module, &self.caller));
                let ack = crate::transactions::answer(&module, view.as_ref(), request_id, &committed);
                vec![text(&ServerFrame::Transaction(ack))]
            }
            Answer::Transaction(Err(e), request_id, ..) => {
                self.error(e.code(), &e.to_string(), e.details(), request_id, None)
            }
        }
    }

    fn render_outcome(&self, o: Outcome) -> Vec<String> {
        match o.outcome {
            Ok(c) => {
                // Acks echo only what the writer may see.
                let seen = match (o.module.schema.table(&c.event.change.table), &c.event.change.row) {
                    (Some(t), Some(row)) => self.caller.admits(&o.module, t, row),
                    _ => true,
                };
                let site = CommitSite {
                    branch_id: &o.module.branch,
                    module_id: &o.module.module,
                    server_id: self.server_id(),
                };
                let mut ack = crate::render::commit_frame(
                    &o.module.schema,
                    &c.event,
                    site,
                    "ws",
                    o.meta,
                    c.primary_key,
                    o.include_record && seen,
                );
                if let Some(name) = &c.table_as_sent {
                    ack = ack.named(name);
                }
                ack.request_id = o.request_id;
                ack.mutation_id = o.mutation_id.or(ack.mutation_id);
                vec![text(&ServerFrame::Ack(ack))]
            }
            Err(e) => self.error(e.code(), &e.to_string(), e.details(), o.request_id, o.mutation_id),
        }
    }
}
