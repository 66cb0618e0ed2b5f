//! `POST .../transactions {requestId?, mutationId?, reads, writes}` ([`crate::transactions`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use mishkah_core::wire::{TransactionAck, TransactionRequest};

use super::body::JsonBody;
use super::error::ApiError;
use crate::access::Caller;
use crate::state::AppState;
use crate::transactions::{commit, Refused};

#[utoipa::path(
    post,
    path = "/api/branches/{branch}/modules/{module}/transactions",
    tag = "transactions",
    summary = "A transaction: reads checked, writes committed together",
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
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path((branch, module)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<TransactionAck>, ApiError> {
    let request: TransactionRequest =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request("invalid-body", e.to_string()))?;
    let handle = state.module(&caller, &branch, &module).await?;
    Ok(Json(commit(&handle, &caller, request, "rest").await?))
}

impl From<Refused> for ApiError {
    fn from(e: Refused) -> ApiError {
        match e {
            Refused::Invalid(e) => {
                let status =
                    if e.code() == "table-not-found" { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
                ApiError::new(status, e.code(), e.to_string())
            }
            Refused::Write(e) => e.into(),
        }
    }
}
