//! `POST /api/sync/{b}/{m}/delta`: the changes since a cursor, deletes included.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use mishkah_core::wire::{DeltaRequest, DeltaResponse, DeltaTableStats};
use serde_json::{json, Value};

use super::body::JsonBody;
use super::error::ApiError;
use crate::clock::now_iso;
use crate::state::AppState;
use crate::views;

#[utoipa::path(
    post,
    path = "/api/sync/{branch}/{module}/delta",
    tag = "sync",
    summary = "Rows changed and keys deleted since a cursor",
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
/// Cursor in (`version`, or `sequence`), rows changed and keys deleted out; `requiresFullSync`
/// when the cursor is older than the retained log.
pub async fn delta(
    State(state): State<AppState>,
    caller: crate::access::Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<DeltaResponse>, ApiError> {
    let req: DeltaRequest = if body.is_null() {
        DeltaRequest::default()
    } else {
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?
    };
    let handle = state.module(&caller, &branch, &module).await?;
    let cursor = req.sequence.or(req.version).unwrap_or(0);
    let mut response = DeltaResponse {
        branch_id: branch,
        module_id: module,
        version: handle.head(),
        updated_at: now_iso(),
        snapshot_marker: req.snapshot_marker.clone().unwrap_or(Value::Null),
        requires_full_sync: false,
        cursor_misses: Vec::new(),
        last_table_ids: BTreeMap::new(),
        last_table_refs: BTreeMap::new(),
        deltas: BTreeMap::new(),
        deletions: BTreeMap::new(),
        stats: BTreeMap::new(),
    };
    match views::delta_since(&handle, cursor, &caller).await? {
        Err(_) => {
            response.requires_full_sync = true;
            response.cursor_misses = req.tables.keys().cloned().collect();
        }
        Ok(delta) => {
            response.version = delta.to;
            for (table, changes) in delta.tables {
                let rows: Vec<_> = changes.rows.into_values().collect();
                let deleted: Vec<String> = changes.deleted.into_iter().map(|k| k.0).collect();
                if let Some(last) = rows.last() {
                    let id = last.get("id").cloned().unwrap_or(Value::Null);
                    response.last_table_ids.insert(table.clone(), id.clone());
                    response
                        .last_table_refs
                        .insert(table.clone(), json!({"id": id, "updatedAt": last.get("updatedAt")}));
                }
                response.stats.insert(
                    table.clone(),
                    DeltaTableStats {
                        total: (rows.len() + deleted.len()) as u64,
                        returned: rows.len() as u64,
                        cursor_matched: true,
                    },
                );
                if !deleted.is_empty() {
                    response.deletions.insert(table.clone(), deleted);
                }
                response.deltas.insert(table, rows);
            }
        }
    }
    Ok(Json(response))
}

/// The most stored rows one page of the first sync reads.
pub const MAX_SYNC_PAGE: usize = 10_000;

#[derive(Debug, serde::Deserialize)]
pub struct PagesParams {
    table: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    lang: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/branches/{branch}/modules/{module}/pages",
    tag = "sync",
    summary = "One page of a first sync, by key",
    params(
        ("branch" = String, Path, description = "Branch id"),
        ("module" = String, Path, description = "Module id"),
        ("table" = Option<String>, Query, description = "The table to go on in"),
        ("after" = Option<String>, Query, description = "The key to go on after"),
        ("limit" = Option<String>, Query, description = "Stored rows at most (cap 10000)"),
        ("lang" = Option<String>, Query, description = "Language of translated fields"),
    ),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
/// `GET .../modules/{m}/pages?table=&after=&limit=&lang=`: one page of a first sync
/// ([`views::pages`]), from the start without `table`; `limit` stored rows at most (default and
/// cap [`MAX_SYNC_PAGE`]).
pub async fn pages(
    State(state): State<AppState>,
    caller: crate::access::Caller,
    Path((branch, module)): Path<(String, String)>,
    super::query::Query(p): super::query::Query<PagesParams>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let limit = match p.limit.as_deref() {
        None | Some("") => MAX_SYNC_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request("invalid-limit", "`limit` must be a positive integer"))?,
    };
    let from = match (p.table, p.after) {
        (Some(table), after) => Some(views::pages::Position { table, after }),
        (None, None) => None,
        (None, Some(_)) => return Err(ApiError::bad_request("invalid-position", "`after` needs its `table`")),
    };
    let handle = state.module(&caller, &branch, &module).await?;
    let lang = p.lang.filter(|l| !l.is_empty());
    let body = views::pages::page(&handle, from, limit.min(MAX_SYNC_PAGE), lang.as_deref(), &caller).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}
