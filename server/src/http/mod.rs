//! REST routes, under the original system's paths (spec §5). Handlers are thin: extract, call the
//! engine, map the result; every error goes through [`error::ApiError`].

pub mod body;
mod caller;
mod catalog;
pub mod error;
mod events;
mod manage;
mod orders;
mod purge_live;
mod sync;
mod system;
mod tables;
mod transactions;
mod webhooks;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub use tables::MAX_PAGE;

/// Every REST route.
pub fn routes() -> Router<AppState> {
    const MODULE: &str = "/api/branches/{branch}/modules/{module}";
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/api/state", get(system::state))
        .route("/api/schema", get(catalog::schema))
        .route("/api/schemas", get(catalog::schemas))
        .route("/api/schemas/{*rest}", get(catalog::schema_file))
        .route("/api/modules", get(catalog::modules))
        .route("/api/branches", get(catalog::branches))
        .route("/api/branches/{branch}", get(catalog::branch))
        .route("/api/branches/{branch}/modules", get(catalog::branch_modules))
        .route(MODULE, get(catalog::module_snapshot))
        .route(&format!("{MODULE}/tables"), get(catalog::module_tables))
        .route(&format!("{MODULE}/schema"), get(catalog::module_schema))
        .route(
            &format!("{MODULE}/tables/{{table}}"),
            get(tables::list).post(tables::insert).patch(tables::merge).put(tables::save).delete(tables::delete),
        )
        .route(&format!("{MODULE}/tables/{{table}}/{{id}}"), get(tables::get_one).delete(tables::delete_one))
        .route(&format!("{MODULE}/tables/{{table}}/count"), get(tables::count))
        .route(&format!("{MODULE}/tables/{{table}}/aggregate"), get(tables::aggregate))
        .route(&format!("{MODULE}/tables/{{table}}/search"), get(tables::search))
        .route(&format!("{MODULE}/save"), post(tables::save_body))
        .route(&format!("{MODULE}/sequences"), post(tables::allocate_sequence))
        .route(&format!("{MODULE}/orders"), get(orders::list).post(orders::save))
        .route(&format!("{MODULE}/orders/{{id}}"), get(orders::get))
        .route(&format!("{MODULE}/pages"), get(sync::pages))
        .route(&format!("{MODULE}/events"), get(events::list))
        .route(&format!("{MODULE}/events/batch"), post(events::batch))
        .route(&format!("{MODULE}/transactions"), post(transactions::run))
        .route(&format!("{MODULE}/reset"), get(manage::reset).post(manage::reset))
        .route("/api/sync/{branch}/{module}/delta", post(sync::delta))
        .route("/api/sync/{branch}/{module}", get(catalog::module_snapshot))
        .route("/api/manage/purge", post(manage::purge))
        .route("/api/manage/purge-live-data", post(purge_live::purge_live_data))
        .route("/api/manage/restore", post(manage::restore))
        .route("/api/manage/history", get(manage::history))
        .route("/api/manage/compact", post(manage::compact))
        .route("/api/webhooks", get(webhooks::list))
        .route("/api/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/api/webhooks/{id}/pause", post(webhooks::pause))
        .route("/api/webhooks/{id}/resume", post(webhooks::resume))
        .route("/api/webhooks/{id}/replay", post(webhooks::replay))
}
