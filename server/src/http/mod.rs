//! REST routes, under the original system's paths (spec §5). Handlers are thin: extract, call the
//! engine, map the result; every error goes through [`error::ApiError`].

mod admin_views;
pub mod body;
mod caller;
mod catalog;
pub mod error;
mod events;
mod keys;
mod manage;
pub mod openapi;
mod orders;
mod purge_live;
mod query;
mod sync;
mod system;
mod tables;
mod transactions;
mod webhooks;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use tables::MAX_PAGE;

/// Every REST route, each with its description (`GET /api/openapi.json`): a route enters the
/// router only through its handler's `#[utoipa::path]`, so none is served undescribed.
pub fn routes() -> Router<AppState> {
    let (router, description) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(openapi::description))
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics))
        .routes(routes!(system::state))
        .routes(routes!(catalog::schema))
        .routes(routes!(catalog::schemas))
        .routes(routes!(catalog::global_schema_file))
        .routes(routes!(catalog::branch_schema_file))
        .routes(routes!(catalog::other_schema_path))
        .routes(routes!(catalog::modules))
        .routes(routes!(catalog::branches))
        .routes(routes!(catalog::branch))
        .routes(routes!(catalog::branch_modules))
        .routes(routes!(catalog::module_snapshot))
        .routes(routes!(catalog::module_tables))
        .routes(routes!(catalog::module_schema))
        .routes(routes!(tables::list, tables::insert, tables::merge, tables::save, tables::delete))
        .routes(routes!(tables::get_one, tables::delete_one))
        .routes(routes!(tables::count))
        .routes(routes!(tables::aggregate))
        .routes(routes!(tables::search))
        .routes(routes!(tables::save_body))
        .routes(routes!(tables::allocate_sequence))
        .routes(routes!(orders::list, orders::save))
        .routes(routes!(orders::get))
        .routes(routes!(sync::pages))
        .routes(routes!(sync::delta))
        .routes(routes!(catalog::sync_snapshot))
        .routes(routes!(events::list))
        .routes(routes!(events::batch))
        .routes(routes!(transactions::run))
        .routes(routes!(manage::reset))
        .routes(routes!(manage::purge))
        .routes(routes!(purge_live::purge_live_data))
        .routes(routes!(manage::restore))
        .routes(routes!(manage::history))
        .routes(routes!(manage::compact))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(admin_views::rules))
        .routes(routes!(admin_views::check))
        .routes(routes!(admin_views::backups, admin_views::start_backup))
        .routes(routes!(webhooks::list))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::pause))
        .routes(routes!(webhooks::resume))
        .routes(routes!(webhooks::replay))
        .split_for_parts();
    let _ = openapi::DESCRIPTION.set(description);
    router
}
