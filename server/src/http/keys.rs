//! Admin routes of the API keys (what `mishkah keys` does, for the console): `GET /api/keys`
//! (never a key or its hash), `POST /api/keys {name, role, branches?}` (the key, shown once),
//! `DELETE /api/keys/{name}` (revoked: refused by every node within a second).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::JsonBody;
use super::caller::require_manager;
use super::error::ApiError;
use crate::access::Caller;
use crate::keys::{self, KeysError};
use crate::state::AppState;

impl From<KeysError> for ApiError {
    fn from(e: KeysError) -> ApiError {
        let status = match &e {
            KeysError::Exists(_) => StatusCode::CONFLICT,
            KeysError::NotFound(_) => StatusCode::NOT_FOUND,
            KeysError::BadName => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// Runs a keys operation off the async runtime (a shared store's client blocks).
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn crate::storage::SharedDocs) -> Result<T, KeysError> + Send + 'static,
) -> Result<T, ApiError> {
    let docs = state.docs.clone();
    let done = tokio::task::spawn_blocking(move || f(&*docs)).await;
    Ok(done.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "keys-unavailable", e.to_string()))??)
}

#[utoipa::path(
    get,
    path = "/api/keys",
    tag = "keys",
    summary = "The API keys, revoked ones included (admin; never a key or its hash)",
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "list keys")?;
    let keys = blocking(&state, keys::list).await?;
    let keys: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({"name": k.name, "role": k.role, "branches": k.branches, "createdAt": k.created_at,
                   "revokedAt": k.revoked_at})
        })
        .collect();
    Ok(Json(json!({"keys": keys})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    #[serde(default)]
    branches: Option<Vec<String>>,
}

#[utoipa::path(
    post,
    path = "/api/keys",
    tag = "keys",
    summary = "Create a key: `{name, role, branches?}`; the key is in this answer only (admin)",
    request_body(content = serde_json::Value, description = "JSON", content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_manager(&state, &caller, "create keys")?;
    let new: NewKey = serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let (name, role, branches) = (new.name.clone(), new.role.clone(), new.branches.clone());
    let key = blocking(&state, move |docs| keys::create(docs, &name, &role, branches)).await?;
    let body = json!({"name": new.name, "role": new.role, "branches": new.branches, "key": key});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/keys/{name}",
    tag = "keys",
    summary = "Revoke a key (admin)",
    params(("name" = String, Path, description = "The key's name")),
    responses(
        (status = 200, description = "OK", body = serde_json::Value),
        crate::http::openapi::Errors,
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_manager(&state, &caller, "revoke keys")?;
    let revoking = name.clone();
    blocking(&state, move |docs| keys::revoke(docs, &revoking)).await?;
    Ok(Json(json!({"name": name, "revoked": true})))
}
