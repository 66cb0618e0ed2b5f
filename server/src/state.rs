//! What every HTTP and WebSocket handler can reach. Apart from the router (`app`), so handlers
//! and the router do not import each other.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Engine, ModuleHandle};
use crate::http::error::ApiError;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The engine (write path and reads).
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub server_id: String,
    /// Static files served at `/`.
    pub static_dir: Option<Arc<PathBuf>>,
    /// The most rows one page of the table route holds (`--max-page`).
    pub max_page: usize,
    /// Who requests are (`--auth`).
    pub auth: Arc<crate::auth::Authenticator>,
    /// Rate limits and connection caps.
    pub limits: Arc<crate::limits::Limits>,
    /// `--cors-origins`; empty: any origin.
    pub cors_origins: Arc<Vec<axum::http::HeaderValue>>,
    /// Snapshots built or being sent at once (`--max-snapshots`): each holds a module's rows in
    /// memory until its client has taken them.
    pub snapshots: Arc<tokio::sync::Semaphore>,
    /// How long a write to a WebSocket may wait for its client to read (`--send-timeout`);
    /// a client that stops reading is closed, and what was queued for it freed.
    pub send_timeout: std::time::Duration,
    /// The slowest transfer a reading client is granted for a large frame, bytes per second
    /// (`--min-send-rate`), on top of `send_timeout`.
    pub min_send_rate: u64,
    /// How often the server pings each WebSocket; a peer silent for three pings is closed.
    pub ping_interval: std::time::Duration,
    /// The webhooks (`data/webhooks.json`) and their deliveries.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Continuous backup (`--backup-to`), when on.
    pub backup: Option<Arc<crate::backup::shipping::Shipping>>,
    /// Where the documents every node reads alike are kept (the API keys).
    pub docs: Arc<dyn crate::storage::SharedDocs>,
}

impl AppState {
    /// A module of a branch, opened when needed; the branch is created only if `caller` may.
    pub async fn module(
        &self,
        caller: &crate::access::Caller,
        branch: &str,
        module: &str,
    ) -> Result<Arc<ModuleHandle>, ApiError> {
        let opening = caller.opening(branch, self.auth.required());
        Ok(self.engine.module_as(branch, module, opening).await?)
    }
}
