//! Health, metrics and server state.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::clock::now_iso;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "system",
    summary = "Liveness: the process answers",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /healthz`: `ok`, or `degraded` with the modules that cannot serve and those whose last
/// commit failed (a full disk); the rest serve, so the answer stays 200 for a load balancer.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let unavailable: Vec<Value> = state
        .engine
        .unavailable()
        .into_iter()
        .map(|(branch, module, reason)| json!({"branchId": branch, "moduleId": module, "reason": reason}))
        .collect();
    let failing: Vec<Value> = state
        .metrics
        .failing_commits()
        .into_iter()
        .map(|((branch, module), reason)| json!({"branchId": branch, "moduleId": module, "reason": reason}))
        .collect();
    let store = store_reachable(&state).await;
    let status = if unavailable.is_empty() && failing.is_empty() && store.is_ok() { "ok" } else { "degraded" };
    Json(json!({"status": status, "serverId": state.server_id, "now": now_iso(), "unavailable": unavailable,
                "writesFailing": failing, "store": store.err().unwrap_or_else(|| "ok".into())}))
}

/// Whether this node reaches its store (always, for SQLite files; PostgreSQL answers `SELECT 1`).
async fn store_reachable(state: &AppState) -> Result<(), String> {
    let backend = state.engine.backend().clone();
    match tokio::task::spawn_blocking(move || backend.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable: {e}")),
        Err(e) => Err(format!("unreachable: {e}")),
    }
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "system",
    summary = "Readiness: the store answers (503 while it does not)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /readyz`: 200 when this node can serve (its store answers), else 503 — what a load
/// balancer sends traffic by.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match store_reachable(&state).await {
        Ok(()) => (StatusCode::OK, Json(json!({"ready": true, "serverId": state.server_id}))),
        Err(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false, "serverId": state.server_id, "store": why})))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    summary = "Prometheus metrics (text exposition format)",
    responses(
        (status = 200, description = "Prometheus text", content_type = "text/plain", body = String),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /metrics` (Prometheus text).
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

#[utoipa::path(
    get,
    path = "/api/state",
    tag = "system",
    summary = "Server state: branches, modules, connections",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/state`.
pub async fn state(State(state): State<AppState>, caller: crate::access::Caller) -> Json<Value> {
    let data = state.engine.data();
    Json(json!({
        "serverId": state.server_id,
        "now": now_iso(),
        "modules": data.modules.keys().collect::<Vec<_>>(),
        "branches": data.branches.branches.keys().filter(|b| caller.who.may_use_branch(b)).collect::<Vec<_>>(),
    }))
}
