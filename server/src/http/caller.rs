//! The caller of a REST request, from the identity the authentication middleware verified (none
//! with `--auth off`: anonymous).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use mishkah_core::rules::Principal;
use serde_json::json;

use super::error::ApiError;
use crate::access::Caller;
use crate::auth::Identity;
use crate::state::AppState;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        let who = parts.extensions.get::<Identity>().map_or_else(Principal::anonymous, Identity::principal);
        Ok(Caller::new(Arc::new(who), "rest"))
    }
}

/// 403 unless `caller` may use the management routes ([`Caller::may_manage`]).
pub fn require_manager(state: &AppState, caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.may_manage(state.auth.required(), state.engine.data().rules.is_open()) {
        return Ok(());
    }
    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("only admins may {what}"))
        .with_details(json!({"action": what})))
}
