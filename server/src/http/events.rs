//! The event log over REST: list, and the original's batch ingest (now atomic).

use crate::engine::WriteError;
use axum::extract::{Path, State};

use super::query::Query;
use axum::Json;
use mishkah_core::wire::EventsBatchRequest;
use mishkah_core::{Action, Mutation};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::access::{Caller, View};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct ListParams {
    #[serde(default, alias = "since")]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    /// Only this table's events (with `key`: one row's history).
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

/// Events read at a time while looking for one table's or row's.
const SCAN_PAGE: usize = 5_000;

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/events",
    tag = "events",
    summary = "The module's event log, after a sequence",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("after" = Option<String>, Query, description = "Events after this sequence"),
        ("limit" = Option<String>, Query, description = "How many"),
        ("table" = Option<String>, Query, description = "Only this table's events"),
        ("key" = Option<String>, Query, description = "With `table`: only this row's events (its history)"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../events?after=&limit=&table=&key=`: with `table` (and `key`), the retained log is read
/// through for that table's (row's) events, `limit` of them at most.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let handle = state.module(&caller, &branch, &module).await?;
    let after = p.after.unwrap_or(0);
    let limit = p.limit.unwrap_or(500).min(5_000);
    let admin = caller.who.admin;
    let (table, key) = (p.table, p.key);
    let (events, bounds, last_id) = handle
        .read(move |r, _| {
            let Some(table) = table else {
                return Ok((r.logged_after(after, limit)?, r.bounds()?, r.last_event_id()?));
            };
            let mut found = Vec::new();
            let mut from = after;
            loop {
                let page = r.logged_after(from, SCAN_PAGE)?;
                let Some(last) = page.last() else { break };
                from = last.event.sequence;
                let full = page.len() == SCAN_PAGE;
                found.extend(page.into_iter().filter(|l| {
                    l.event.change.table == table && key.as_ref().is_none_or(|k| l.event.change.key.as_str() == k)
                }));
                if found.len() >= limit || !full {
                    break;
                }
            }
            found.truncate(limit);
            Ok((found, r.bounds()?, r.last_event_id()?))
        })
        .await?;
    let events = crate::render::events(&handle.schema, events, &View::of(&handle, &caller));
    // Through what each change came (`rest`, `ws`, `seed`, `schema`...); who wrote it: for admins only.
    let events: Vec<Value> = events
        .into_iter()
        .map(|l| {
            let mut v = serde_json::to_value(l.event).unwrap_or(Value::Null);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("source".into(), Value::from(l.source));
                if admin {
                    obj.insert("actor".into(), l.actor.map_or(Value::Null, Value::from));
                }
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "branchId": branch, "moduleId": module, "events": events,
        "oldestRetained": bounds.0, "lastSequence": bounds.1, "lastEventId": last_id,
    })))
}

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/events/batch",
    tag = "events",
    summary = "Several writes, committed together or not at all",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST .../events/batch {lastAckId, events}`: all events commit together or none does (the
/// original applied a prefix on failure); 409 `last-ack-mismatch` when `lastAckId` is stale.
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let req: EventsBatchRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let handle = state.module(&caller, &branch, &module).await?;
    let mut mutations = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.iter().enumerate() {
        let table = e.get("table").or_else(|| e.get("tableName")).and_then(Value::as_str);
        let record = e.get("record").or_else(|| e.get("data")).filter(|r| r.is_object());
        let (Some(table), Some(record)) = (table, record) else {
            return Err(ApiError::bad_request(
                "invalid-event",
                format!("event #{i} needs `table` and an object `record`"),
            ));
        };
        let action = match e.get("action").and_then(Value::as_str) {
            None => Action::Insert,
            Some(a) => Action::from_wire(a)
                .ok_or_else(|| ApiError::bad_request("unknown-action", format!("event #{i}: unknown action `{a}`")))?,
        };
        let mut m = Mutation::new(table, action, record.clone());
        m.mutation_id = e.get("mutationId").or_else(|| e.get("id")).and_then(Value::as_str).map(str::to_owned);
        mutations.push(m);
    }
    // `lastAckId` is checked by the writer inside the batch's transaction: two batches that both
    // expect the same last event cannot both pass.
    let expected = req.last_ack_id.clone();
    let current = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = current.clone();
    let precondition: crate::engine::Precondition = Box::new(move |txn| {
        let last = txn.last_event_id()?;
        if let Some(expected) = expected.filter(|e| last.as_ref() != Some(e)) {
            return Err(WriteError::Precondition {
                code: "last-ack-mismatch",
                message: "lastAckId is not the log's last event id".into(),
                details: json!({"lastAckId": expected, "lastEventId": last}),
            });
        }
        *seen.lock().unwrap_or_else(|p| p.into_inner()) = last;
        Ok(())
    });
    let committed = handle.write_atomic_if(mutations, "rest", caller.sender(), precondition).await?;
    let current = current.lock().unwrap_or_else(|p| p.into_inner()).take();
    let sequences: Vec<Value> = committed
        .iter()
        .map(|c| json!({"id": c.event.event_id, "sequence": c.event.sequence, "table": c.event.change.table, "createdAt": c.event.created_at}))
        .collect();
    let last = committed.last().map(|c| c.event.event_id.clone()).or(current);
    Ok(Json(json!({"ingested": committed.len(), "lastAckId": last, "lastEventId": last, "sequences": sequences})))
}
