//! Management: reset to seed, purge into history archives, restore, list history. Every row these
//! touch goes through the write path, so clients see each change as a normal event.

use std::collections::HashSet;

use axum::extract::{Path, State};

use super::query::Query;
use axum::Json;
use mishkah_core::{Action, Mutation, RecordKey};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::caller::{require_branch, require_manager};
use super::error::ApiError;
use crate::access::Caller;
use crate::clock::now_iso;
use crate::engine::seed;
use crate::state::AppState;

#[utoipa::path(
    get, post,
    path = "/api/branches/{branch}/modules/{module}/reset",
    tag = "manage",
    summary = "Reset a module to its seed (admin)",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST|GET .../modules/{m}/reset`: archives the current rows, resets counters, re-seeds.
pub async fn reset(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "reset")?;
    let handle = state.module(&caller, &branch, &module).await?;
    let archive = format!("reset-{}", now_iso());
    let tables: Vec<String> = handle.schema.tables.keys().cloned().collect();
    let purged = handle.purge(tables, archive.clone()).await?;
    let data = state.engine.data();
    let prefix = format!("{module}:");
    let counters = data
        .sequence_state(&branch)
        .map_err(crate::engine::EngineError::from)?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .collect();
    handle.reset_counters(counters).await?;
    let mut seeded = 0;
    if let Some((doc, _)) = data.seed_for(&branch, &module).map_err(crate::engine::EngineError::from)? {
        let plan = seed::plan(&handle.schema, &doc);
        let mutations: Vec<_> =
            plan.mutations.into_iter().filter(|m| handle.schema.table(&m.table).is_some()).collect();
        seeded = handle.import_atomic(mutations, "seed", caller.sender()).await?.len();
    }
    Ok(Json(
        json!({"status": "reset", "branchId": branch, "moduleId": module, "archive": archive, "purged": purged.len(), "seeded": seeded}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeRequest {
    #[serde(alias = "branch")]
    branch_id: String,
    #[serde(alias = "module")]
    module_id: String,
    #[serde(default)]
    tables: Option<Vec<String>>,
    #[serde(default)]
    table: Option<String>,
    #[serde(default, alias = "name")]
    archive: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/manage/purge",
    tag = "manage",
    summary = "Purge rows into the archive (admin)",
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST /api/manage/purge {branchId, moduleId, tables?|table?, archive?}`.
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "purge")?;
    let req: PurgeRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    require_branch(&caller, &req.branch_id)?;
    let handle = state.module(&caller, &req.branch_id, &req.module_id).await?;
    let tables = match (req.tables, req.table) {
        (Some(list), _) => list,
        (None, Some(one)) => vec![one],
        (None, None) => handle.schema.tables.keys().cloned().collect(),
    };
    if let Some(unknown) = tables.iter().find(|t| handle.schema.table(t).is_none()) {
        return Err(ApiError::not_found("table-not-found", format!("no table `{unknown}`")));
    }
    let archive = req.archive.unwrap_or_else(|| format!("purge-{}", now_iso()));
    let purged = handle.purge(tables, archive.clone()).await?;
    Ok(Json(
        json!({"status": "purged", "branchId": req.branch_id, "moduleId": req.module_id, "archive": archive, "purged": purged.len()}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    #[serde(alias = "branch")]
    branch_id: String,
    #[serde(alias = "module")]
    module_id: String,
    #[serde(alias = "name")]
    archive: String,
}

#[utoipa::path(
    post,
    path = "/api/manage/restore",
    tag = "manage",
    summary = "Restore archived rows (admin)",
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST /api/manage/restore {branchId, moduleId, archive}`: puts archived rows whose key is free
/// back (atomically); rows whose key is taken again are reported, not overwritten.
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "restore")?;
    let req: RestoreRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    require_branch(&caller, &req.branch_id)?;
    let handle = state.module(&caller, &req.branch_id, &req.module_id).await?;
    let archive = req.archive.clone();
    let (rows, taken) = handle
        .read(move |r, schema| {
            let rows = r.archived_rows(&archive)?;
            let mut taken = HashSet::new();
            for (table, row) in &rows {
                if let Some(t) = schema.table(table) {
                    if let Ok(key) = RecordKey::of(t, row) {
                        if r.row(t, &key)?.is_some() {
                            taken.insert((table.clone(), key));
                        }
                    }
                }
            }
            Ok((rows, taken))
        })
        .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("archive-not-found", format!("no archive `{}`", req.archive)));
    }
    let mut skipped = Vec::new();
    let mut mutations = Vec::new();
    for (table, row) in rows {
        let Some(t) = handle.schema.table(&table) else {
            continue;
        };
        match RecordKey::of(t, &row) {
            Ok(key) if taken.contains(&(table.clone(), key.clone())) => {
                skipped.push(json!({"table": table, "key": key}))
            }
            _ => mutations.push(Mutation::new(&table, Action::Insert, Value::Object(row))),
        }
    }
    let restored = handle.import_atomic(mutations, "restore", caller.sender()).await?;
    Ok(Json(
        json!({"status": "restored", "branchId": req.branch_id, "moduleId": req.module_id, "archive": req.archive, "restored": restored.len(), "skipped": skipped}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryParams {
    #[serde(alias = "branch")]
    branch_id: String,
    #[serde(alias = "module")]
    module_id: String,
}

#[utoipa::path(
    get,
    path = "/api/manage/history",
    tag = "manage",
    summary = "A module's purge history (admin)",
    params(
        ("branchId" = Option<String>, Query, description = "Branch id"),
        ("moduleId" = Option<String>, Query, description = "Module id"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET /api/manage/history?branchId=&moduleId=`: the archives.
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "history")?;
    require_branch(&caller, &p.branch_id)?;
    let handle = state.module(&caller, &p.branch_id, &p.module_id).await?;
    let archives = handle.read(|r, _| r.archives()).await?;
    let list: Vec<Value> = archives
        .into_iter()
        .map(|(a, t, n, at)| json!({"archive": a, "table": t, "rows": n, "archivedAt": at}))
        .collect();
    Ok(Json(json!({"branchId": p.branch_id, "moduleId": p.module_id, "archives": list})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompactRequest {
    #[serde(alias = "branch")]
    branch_id: String,
    #[serde(alias = "module")]
    module_id: String,
    /// Checkpoint: drop events up to this sequence (default: all but the newest 1,000).
    #[serde(default)]
    through: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/api/manage/compact",
    tag = "manage",
    summary = "Compact a module's event log (admin)",
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `POST /api/manage/compact {branchId, moduleId, through?}`: log retention. Cursors older than the
/// checkpoint are told to resync in full afterwards.
pub async fn compact(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "compact")?;
    let req: CompactRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    require_branch(&caller, &req.branch_id)?;
    let handle = state.module(&caller, &req.branch_id, &req.module_id).await?;
    let mut through = req.through.unwrap_or_else(|| handle.head().saturating_sub(1_000));
    // What a webhook has not delivered yet stays.
    if let Some(needed) = state.webhooks.needed_after(&req.branch_id, &req.module_id).await? {
        through = through.min(needed);
    }
    // So does what continuous backup has not shipped.
    if let Some(backup) = &state.backup {
        through = through.min(backup.needed_after(&req.branch_id, &req.module_id).await);
    }
    let removed = handle.compact(through).await?;
    Ok(Json(
        json!({"status": "compacted", "branchId": req.branch_id, "moduleId": req.module_id, "through": through, "removed": removed}),
    ))
}
