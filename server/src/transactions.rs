//! A client's transaction (`POST .../transactions`, `client:transaction`), from request to answer:
//! checked against the schema by the core, its reads checked inside the writer's database
//! transaction as the caller may see the rows (so no other write slips between the check and the
//! commit, and a hidden row reads as absent), written all or nothing.

use std::sync::Arc;

use mishkah_core::record::Strictness;
use mishkah_core::transaction::{Transaction, TransactionError};
use mishkah_core::wire::{TransactionAck, TransactionRequest, TransactionResult};

use crate::access::{Caller, View};
use serde_json::Value;

use crate::engine::{Committed, Job, ModuleHandle, Precondition, WriteError};

/// Why a transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The request is malformed (before anything was read or written).
    #[error(transparent)]
    Invalid(#[from] TransactionError),
    /// A read no longer held, a write failed, or the store did.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Where a transaction's outcome goes (called on the writer thread right after its commit):
/// what it committed, for [`answer`] to render where the caller is, off the writer.
pub type Reply = Box<dyn FnOnce(Result<Vec<Committed>, WriteError>) + Send>;

/// Commits `request` as `caller`, or nothing of it, and waits for the outcome.
pub async fn commit(
    handle: &Arc<ModuleHandle>,
    caller: &Caller,
    request: TransactionRequest,
    source: &'static str,
) -> Result<TransactionAck, Refused> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reply: Reply = Box::new(move |outcome| {
        let _ = tx.send(outcome);
    });
    let (request_id, rows) = (request.request_id.clone(), request.include_records);
    handle.submit(job(handle, caller, request, source, reply)?).await?;
    let committed = rx.await.map_err(|_| WriteError::Unavailable)??;
    let view = rows.then(|| View::of(handle, caller));
    Ok(answer(handle, view.as_ref(), request_id, &committed))
}

/// The writer's job for `request` as `caller`; `reply` gets its outcome once it commits or
/// fails. Queued as any other job, so its answer takes its place among the caller's other acks.
pub fn job(
    handle: &ModuleHandle,
    caller: &Caller,
    request: TransactionRequest,
    source: &'static str,
    reply: Reply,
) -> Result<Job, TransactionError> {
    let transaction = Transaction::of(request, &handle.schema)?;
    let sender = caller.sender();
    let retry_of = transaction.first_mutation_id().map(str::to_owned);
    let scope = sender.dedup_scope().to_owned();
    let view = View::of(handle, caller);
    let reads = transaction.reads;
    let precondition: Precondition = Box::new(move |txn| {
        // A retry of a transaction that committed is answered with what it wrote (each write
        // is then recognised by its mutation id), not refused because its reads changed since.
        if let Some(id) = &retry_of {
            if txn.committed_event(&scope, id)?.is_some() {
                return Ok(());
            }
        }
        for read in reads {
            let stored = txn.row(&read.table, &read.key)?.filter(|row| view.admits(&read.table, row));
            read.check(stored.as_ref()).map_err(|failed| WriteError::Precondition {
                code: failed.code(),
                message: failed.to_string(),
                details: failed.details(),
            })?;
        }
        Ok(())
    });
    Ok(Job::Atomic {
        mutations: transaction.writes,
        source,
        meta: serde_json::Value::Null,
        strictness: Strictness::Strict,
        sender,
        precondition: Some(precondition),
        reply,
    })
}

/// What a committed transaction answers its caller: each write's place in the log and, given the
/// caller's `view`, its row as the caller may see it (through the one renderer).
pub fn answer(
    handle: &ModuleHandle,
    view: Option<&View>,
    request_id: Option<Value>,
    committed: &[Committed],
) -> TransactionAck {
    let results = committed
        .iter()
        .map(|c| {
            let row = view.and_then(|view| {
                let table = handle.schema.table(&c.event.change.table)?;
                let seen = crate::render::event(&handle.schema, &c.event)?;
                seen.change.row.clone().filter(|row| view.admits(table, row))
            });
            TransactionResult {
                table: c.event.change.table.clone(),
                id: c.event.change.key.0.clone(),
                action: c.event.change.kind,
                version: c.event.change.version,
                sequence: c.event.sequence,
                event_id: c.event.event_id.clone(),
                row,
            }
        })
        .collect();
    TransactionAck {
        request_id,
        branch_id: handle.branch.clone(),
        module_id: handle.module.clone(),
        transaction_id: committed.first().and_then(|c| c.event.transaction_id.clone()),
        first_sequence: committed.first().map(|c| c.event.sequence),
        last_sequence: committed.last().map(|c| c.event.sequence),
        results,
    }
}
