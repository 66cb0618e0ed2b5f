//! `GET /api/openapi.json`: an OpenAPI 3.1 description of every REST route, generated from the
//! handlers' `#[utoipa::path]` annotations — the router is built from the same annotations
//! ([`super::routes()`]), so a route cannot be served without being described.

use std::sync::OnceLock;

use axum::Json;
use utoipa::{IntoResponses, OpenApi, ToSchema};

/// The one error shape of every REST error (`mishkah_core::wire::ErrorBody`), for the description.
#[derive(ToSchema)]
#[allow(dead_code)] // described, never built: the errors are `ErrorBody`
pub struct Error {
    /// A stable code (`validation-failed`, `version-conflict`, `not-found`, `forbidden`...).
    error: String,
    /// What happened, for people.
    message: String,
    /// Code-specific details (the fields that failed, the stored version...).
    details: serde_json::Value,
}

/// What every operation may answer besides its success: the error shape, 4xx and 5xx.
#[derive(IntoResponses)]
#[allow(dead_code)] // described, never built
pub enum Errors {
    #[response(status = "4XX", description = "A structured error")]
    Client(Error),
    #[response(status = "5XX", description = "A structured error")]
    Server(Error),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mishkah",
        description = "A real-time, offline-first data sync server: the original's REST routes and Mishkah's own.",
    ),
    components(schemas(Error)),
    tags(
        (name = "system", description = "Health, readiness, metrics"),
        (name = "catalog", description = "Modules, branches, schemas, snapshots"),
        (name = "tables", description = "Rows: queries and writes"),
        (name = "orders", description = "The POS's orders with their lines and payments"),
        (name = "sync", description = "First sync in pages, deltas"),
        (name = "events", description = "The event log, batches"),
        (name = "transactions", description = "Transactions"),
        (name = "manage", description = "Administration: reset, purge, restore, compaction"),
        (name = "webhooks", description = "Webhooks: state, dead letters, replay"),
    )
)]
pub struct ApiDoc;

/// The description, once the router has gathered every route's.
pub(super) static DESCRIPTION: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "system",
    summary = "This description (OpenAPI 3.1)",
    responses((status = 200, description = "OK", body = serde_json::Value)),
)]
/// `GET /api/openapi.json`.
pub async fn description() -> Json<utoipa::openapi::OpenApi> {
    Json(DESCRIPTION.get().cloned().unwrap_or_else(ApiDoc::openapi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_described_is_the_error_sent() {
        let sent = serde_json::to_value(mishkah_core::wire::ErrorBody {
            error: "e".into(),
            message: "m".into(),
            details: serde_json::Value::Null,
        })
        .unwrap();
        let described = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let properties = &described["components"]["schemas"]["Error"]["properties"];
        let mut a: Vec<&String> = sent.as_object().unwrap().keys().collect();
        let mut b: Vec<&String> = properties.as_object().unwrap().keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
