//! The caller of a REST request, from the identity the authentication middleware verified (none
//! with `--auth off`: anonymous).

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::StatusCode;
use mishkah_core::rules::Principal;
use serde_json::json;

use super::error::ApiError;
use crate::access::Caller;
use crate::auth::Identity;
use crate::state::AppState;

/// The caller, refused with 403 `branch-forbidden` when the route names a branch its `branches`
/// claim does not list.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        let who = parts.extensions.get::<Identity>().map_or_else(Principal::anonymous, Identity::principal);
        let mut caller = Caller::new(Arc::new(who), "rest");
        if let Some(client) = parts.headers.get("mishkah-client").and_then(|v| v.to_str().ok()) {
            caller.set_client(client);
        }
        caller.address = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
            if let Some((_, branch)) = params.iter().find(|(name, _)| *name == "branch") {
                require_branch(&caller, branch)?;
            }
        }
        Ok(caller)
    }
}

/// 403 unless `caller` may use `branch`.
pub fn require_branch(caller: &Caller, branch: &str) -> Result<(), ApiError> {
    if caller.who.may_use_branch(branch) {
        return Ok(());
    }
    let e = crate::auth::AuthError::BranchForbidden(branch.to_owned());
    Err(ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string()).with_details(json!({"branchId": branch})))
}

/// 403 unless `caller` may use the management routes ([`Caller::may_manage`]).
pub fn require_manager(state: &AppState, caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.may_manage(state.auth.required(), state.engine.data().rules.is_open()) {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("only admins may {what}"))
        .with_details(json!({"action": what})))
}
