//! What the console shows of the server's configuration: `GET /api/rules` (the rules file as it
//! is on disk, and its problems as `mishkah check` words them), `GET /api/check` (the whole
//! directory and what its schemas do to the stored rows) and the backups — `GET /api/backups`
//! (the snapshots on `--backup-to`), `POST /api/backups` (take one now).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::caller::require_manager;
use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/rules",
    tag = "admin",
    summary = "The security rules file and its problems (admin)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn rules(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "read the rules")?;
    let data = state.engine.data();
    let (root, path, open) = (data.root().to_path_buf(), data.rules_path().to_path_buf(), data.rules.is_open());
    let read = tokio::task::spawn_blocking(move || {
        let text = std::fs::read_to_string(&path).ok();
        let relative = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        // Checked as on disk now: an edit since the server started shows here before a restart.
        let problems: Vec<String> = crate::datadir::check::check(&root, Some(&path), None)
            .into_iter()
            .filter(|p| p.file == relative)
            .map(|p| p.to_string())
            .collect();
        (relative, text, problems)
    })
    .await;
    let (file, text, problems) =
        read.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-error", e.to_string()))?;
    Ok(Json(json!({"file": file, "enforced": !open, "text": text, "problems": problems})))
}

#[utoipa::path(
    get,
    path = "/api/check",
    tag = "admin",
    summary = "`mishkah check` on the data directory as it is on disk, against the stored rows (admin)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// What `mishkah check` says now: an edited schema's effect on the stored rows (fields added with
/// the default old rows get, dropped, retyped with the rows refused) before the restart applies it.
pub async fn check(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "check the data directory")?;
    let data = state.engine.data();
    let (root, rules) = (data.root().to_path_buf(), data.rules_path().to_path_buf());
    let backend = state.engine.backend().clone();
    let checked =
        tokio::task::spawn_blocking(move || crate::datadir::check::check(&root, Some(&rules), Some(&*backend)))
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage-error", e.to_string()))?;
    let problems: Vec<Value> = checked
        .iter()
        .map(|p| json!({"severity": p.severity.as_str(), "file": p.file, "at": p.at, "message": p.message, "line": p.to_string()}))
        .collect();
    Ok(Json(json!({"problems": problems})))
}

fn no_backups() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "backup-not-configured", "this server was not started with --backup-to")
}

#[utoipa::path(
    get,
    path = "/api/backups",
    tag = "admin",
    summary = "The snapshots on the backup target (admin)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn backups(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "list backups")?;
    let Some(backup) = state.backup.clone() else {
        return Ok(Json(json!({"configured": false, "snapshots": []})));
    };
    let snapshots = backup
        .snapshots()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "backup-unavailable", e.to_string()))?;
    let snapshots: Vec<Value> = snapshots
        .iter()
        .rev()
        .map(|m| {
            let bytes: u64 = m.files.iter().map(|f| f.bytes).sum();
            json!({"name": m.name, "createdAt": m.created_at, "modules": m.modules, "files": m.files.len(), "bytes": bytes})
        })
        .collect();
    Ok(Json(json!({"configured": true, "target": backup.target_name(), "running": backup.snapshot_running(),
                   "snapshots": snapshots})))
}

#[utoipa::path(
    post,
    path = "/api/backups",
    tag = "admin",
    summary = "Take a snapshot now (admin; 409 without --backup-to)",
    responses(
        (status = 202, description = "Accepted: the next round takes it", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn start_backup(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    require_manager(&state, &caller, "start backups")?;
    let backup = state.backup.clone().ok_or_else(no_backups)?;
    backup.request_snapshot();
    Ok((StatusCode::ACCEPTED, Json(json!({"requested": true}))).into_response())
}
