//! The router: API routes, WebSocket upgrades, static files.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::http::error::ApiError;
use crate::state::AppState;

/// Largest accepted request body (the original accepted 64 MiB; we refuse with 413).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// The whole application: API routes, WebSocket upgrades on any other path, static files.
pub fn router(state: AppState) -> Router {
    let api = crate::http::routes()
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), require_identity));
    Router::new()
        .merge(api)
        .route("/ws", axum::routing::get(crate::ws::upgrade))
        .fallback(fallback)
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(CompressionLayer::new())
        .layer(CorsLayer::permissive())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// With `--auth required`, an API request without a valid token is answered 401 before any route
/// runs (`/healthz` stays open for load balancers).
async fn require_identity(State(state): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    if !state.auth.required() || req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let verdict = state.auth.from_headers(req.headers()).unwrap_or(Err(crate::auth::AuthError::Missing));
    match verdict {
        Ok(identity) => {
            let mut req = req;
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(e) => {
            let mut response =
                ApiError::new(axum::http::StatusCode::UNAUTHORIZED, e.code(), e.to_string()).into_response();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// Any other path: a WebSocket upgrade (the original accepted them anywhere), else a static file.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if is_upgrade {
        let (mut parts, _) = req.into_parts();
        let headers = parts.headers.clone();
        let query = axum::extract::RawQuery(parts.uri.query().map(str::to_owned));
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(ws) => crate::ws::upgrade(ws, State(state), headers, query).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    let Some(dir) = state.static_dir.clone() else {
        return ApiError::not_found("not-found", "no such route").into_response();
    };
    // The demo is reachable at `/` and, as links from the original's apps expect, at `/static/`.
    let mut req = req;
    if let Some(rest) = req.uri().path().strip_prefix("/static/") {
        let rewritten = match req.uri().query() {
            Some(q) => format!("/{rest}?{q}"),
            None => format!("/{rest}"),
        };
        if let Ok(uri) = rewritten.parse() {
            *req.uri_mut() = uri;
        }
    }
    // ServeDir never escapes its directory (`..` is refused) and answers 404 for missing files.
    match ServeDir::new(dir.as_ref()).append_index_html_on_directories(true).oneshot(req).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
