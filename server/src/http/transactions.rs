//! `POST .../transactions {requestId?, reads, writes}`: writes across tables that commit together
//! or not at all, if every read still holds when the writer takes them (checked inside the same
//! database transaction, so no other write slips between the check and the commit).

use axum::extract::{Path, State};
use axum::Json;
use mishkah_core::wire::{TransactionRead, TransactionRequest};
use mishkah_core::{Action, Mutation, RecordKey, Row, Table};
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::access::{Caller, View};
use crate::engine::{Precondition, WriteError};
use crate::state::AppState;

/// Most reads and writes one transaction may name.
const MAX_ITEMS: usize = 500;

/// A read as the writer checks it.
struct Expected {
    index: usize,
    table: Table,
    key: RecordKey,
    /// `None`: the row must not exist.
    version: Option<i64>,
}

pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: TransactionRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    if req.writes.is_empty() || req.reads.len() + req.writes.len() > MAX_ITEMS {
        let message = format!("a transaction has 1 to {MAX_ITEMS} writes and reads in all");
        return Err(ApiError::bad_request("invalid-transaction", message));
    }
    let handle = state.module(&caller, &branch, &module).await?;
    let mut mutations = Vec::with_capacity(req.writes.len());
    for (i, w) in req.writes.iter().enumerate() {
        let action = Action::from_wire(&w.action).ok_or_else(|| {
            ApiError::bad_request("unknown-action", format!("write #{i}: unknown action `{}`", w.action))
        })?;
        if !w.record.is_object() {
            return Err(ApiError::bad_request(
                "invalid-transaction",
                format!("write #{i}: `record` must be an object"),
            ));
        }
        let mut m = Mutation::new(&w.table, action, w.record.clone());
        m.expected_version = w.expected_version;
        mutations.push(m);
    }
    let expected: Vec<Expected> = req
        .reads
        .iter()
        .enumerate()
        .map(|(index, read)| expectation(&handle.schema, index, read))
        .collect::<Result<_, _>>()?;
    // A row the caller may not read is, to its reads, a row that does not exist: a transaction
    // must not tell it what its rules hide (an insert of that key still fails, as outside one).
    let view = View::of(&handle, &caller);
    let precondition: Precondition = Box::new(move |txn| {
        for e in expected {
            let stored = txn.row(&e.table, &e.key)?.filter(|row| view.admits(&e.table, row));
            let actual = stored.as_ref().map(|r| r.get("version").and_then(Value::as_i64));
            let holds = match (e.version, &actual) {
                (None, None) => true,
                (Some(v), Some(found)) => *found == Some(v),
                _ => false,
            };
            if !holds {
                return Err(WriteError::Precondition {
                    code: "precondition-failed",
                    message: format!("read #{} of `{}` `{}` no longer holds", e.index, e.table.name, e.key.0),
                    details: json!({
                        "index": e.index, "table": e.table.name, "id": e.key.0,
                        "expected": e.version.map_or(json!({"exists": false}), |v| json!({"version": v})),
                        "actual": match actual { None => json!({"exists": false}), Some(v) => json!({"version": v}) },
                    }),
                });
            }
        }
        Ok(())
    });
    let committed = handle.write_atomic_if(mutations, "rest", caller.sender(), precondition).await?;
    let results: Vec<Value> = committed
        .iter()
        .map(|c| {
            json!({"table": c.event.change.table, "id": c.event.change.key.0, "action": c.event.change.kind,
                   "version": c.event.change.version, "sequence": c.event.sequence, "eventId": c.event.event_id})
        })
        .collect();
    Ok(Json(json!({
        "requestId": req.request_id, "branchId": branch, "moduleId": module,
        "firstSequence": committed.first().map(|c| c.event.sequence),
        "lastSequence": committed.last().map(|c| c.event.sequence),
        "results": results,
    })))
}

fn expectation(schema: &mishkah_core::Schema, index: usize, read: &TransactionRead) -> Result<Expected, ApiError> {
    let table = schema.resolve_table(&read.table).ok_or_else(|| {
        ApiError::not_found("table-not-found", format!("read #{index}: unknown table `{}`", read.table))
    })?;
    let record: Row = match &read.id {
        Value::Object(fields) => fields.clone(),
        single => match table.key_fields().as_slice() {
            [field] => Row::from_iter([((*field).to_owned(), single.clone())]),
            _ => {
                let message = format!("read #{index}: `{}` has a composite key: `id` must be an object", table.name);
                return Err(ApiError::bad_request("invalid-transaction", message));
            }
        },
    };
    let key = RecordKey::of(table, &record)
        .map_err(|e| ApiError::bad_request("missing-record-key", format!("read #{index}: {e}")))?;
    let version = match (read.exists, read.version) {
        (Some(false), None) => None,
        (_, Some(v)) => Some(v),
        _ => {
            let message = format!("read #{index}: give the `version` read, or `exists: false`");
            return Err(ApiError::bad_request("invalid-transaction", message));
        }
    };
    Ok(Expected { index, table: table.clone(), key, version })
}
