//! Admin routes of the webhooks: `GET /api/webhooks`, `GET /api/webhooks/{id}/deliveries` (the
//! dead letters), `POST /api/webhooks/{id}/pause` and `/resume`, `POST /api/webhooks/{id}/replay`
//! (`{}`: the dead letters again; `{branch, fromSequence}`: that branch's events from there on).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::caller::require_manager;
use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;
use crate::webhooks::state::{cursor_key, State as Delivered};

fn describe(hook: &crate::webhooks::config::Webhook, state: &Delivered) -> Value {
    json!({
        "id": hook.id, "url": hook.url.as_str(), "module": hook.module, "tables": hook.tables,
        "actions": hook.actions, "branches": hook.branches, "attempts": hook.attempts,
        "paused": hook.paused || state.paused, "cursors": state.cursors, "deadLetters": state.dead.len(),
        "deliveringNode": state.owner,
    })
}

async fn read(state: &AppState, id: &str) -> Result<Delivered, ApiError> {
    let stored = state.webhooks.stored(id);
    let read = tokio::task::spawn_blocking(move || stored.read()).await;
    let (delivered, _) =
        read.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-error", e.to_string()))??;
    Ok(delivered)
}

fn known(state: &AppState, id: &str) -> Result<(), ApiError> {
    if state.webhooks.list().iter().any(|h| h.id == id) {
        return Ok(());
    }
    Err(ApiError::not_found("webhook-not-found", format!("no webhook `{id}` in webhooks.json")))
}

#[utoipa::path(
    get,
    path = "/api/webhooks",
    tag = "webhooks",
    summary = "The webhooks and where each stands (admin)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/webhooks`: each webhook (never its secret) and how far its deliveries are.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "list webhooks")?;
    let mut out = Vec::new();
    for hook in state.webhooks.list() {
        out.push(describe(&hook, &read(&state, &hook.id).await?));
    }
    Ok(Json(json!({"webhooks": out})))
}

#[utoipa::path(
    get,
    path = "/api/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "A webhook's dead letters and last errors (admin)",
    params(
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/webhooks/{id}/deliveries`: the events given up on, with the last error of each.
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "read webhook deliveries")?;
    known(&state, &id)?;
    let delivered = read(&state, &id).await?;
    Ok(Json(json!({"id": id, "cursors": delivered.cursors, "deadLetters": delivered.dead})))
}

async fn change(
    state: &AppState,
    id: &str,
    f: impl FnMut(&mut Delivered) + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    known(state, id)?;
    let stored = state.webhooks.stored(id);
    let mut f = f;
    let done = tokio::task::spawn_blocking(move || stored.update(|s| f(s))).await;
    done.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-error", e.to_string()))??;
    let delivered = read(state, id).await?;
    Ok(Json(
        json!({"id": id, "paused": delivered.paused, "cursors": delivered.cursors, "deadLetters": delivered.dead.len()}),
    ))
}

#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/pause",
    tag = "webhooks",
    summary = "Pause a webhook (admin)",
    params(
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "pause webhooks")?;
    change(&state, &id, |s| s.paused = true).await
}

#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/resume",
    tag = "webhooks",
    summary = "Resume a webhook (admin)",
    params(
        ("id" = String, Path, description = "Key"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "resume webhooks")?;
    change(&state, &id, |s| s.paused = false).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Replay {
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    from_sequence: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/webhooks/{id}/replay",
    tag = "webhooks",
    summary = "Deliver dead letters again, or from a sequence (admin)",
    params(
        ("id" = String, Path, description = "Key"),
    ),
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST /api/webhooks/{id}/replay`: delivers again from a point of a branch's log, or (no body)
/// from each dead letter on (what was delivered after one is delivered again too, with the same
/// `webhook-id`s, which receivers drop).
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "replay webhooks")?;
    let replay: Replay = if body.is_null() {
        Replay::default()
    } else {
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?
    };
    let module = state.webhooks.list().iter().find(|h| h.id == id).map(|h| h.module.clone()).unwrap_or_default();
    match (replay.branch, replay.from_sequence) {
        (Some(branch), Some(from)) => {
            let key = cursor_key(&branch, &module);
            change(&state, &id, move |s| {
                s.cursors.insert(key.clone(), from.saturating_sub(1));
            })
            .await
        }
        (None, None) => {
            change(&state, &id, |s| {
                for dead in std::mem::take(&mut s.dead) {
                    let cursor = s.cursors.entry(cursor_key(&dead.branch, &dead.module)).or_default();
                    *cursor = (*cursor).min(dead.sequence.saturating_sub(1));
                }
            })
            .await
        }
        _ => Err(ApiError::bad_request("invalid-body", "give both `branch` and `fromSequence`, or neither")),
    }
}
