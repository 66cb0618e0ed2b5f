//! The router: API routes, WebSocket upgrades, static files.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
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
        .layer(axum::middleware::from_fn_with_state(state.clone(), gate));
    let cors = if state.cors_origins.is_empty() {
        CorsLayer::permissive()
    } else {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(state.cors_origins.iter().cloned()))
            .allow_methods(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any)
    };
    Router::new()
        .merge(api)
        .route("/ws", axum::routing::get(upgrade))
        .fallback(fallback)
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Before any API route runs: with `--auth required`, a request without a valid credential is
/// answered 401 (`/healthz` and `/readyz` stay open for load balancers); then the caller's bucket
/// (`--rate-limit`: its identity's, else its address's) must hold a token, else 429.
async fn gate(State(state): State<AppState>, req: Request, next: axum::middleware::Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz") {
        return next.run(req).await;
    }
    let address = crate::limits::Client::Address(client_ip(&req));
    let identity = match state.auth.required() {
        false => None,
        true => match state.auth.from_headers(req.headers()).unwrap_or(Err(crate::auth::AuthError::Missing)) {
            Ok(identity) => Some(identity),
            Err(e) => {
                // A flood of bad credentials spends its address's tokens too.
                if let Err(wait) = state.limits.check(&address) {
                    return too_many(wait);
                }
                let mut response =
                    ApiError::new(axum::http::StatusCode::UNAUTHORIZED, e.code(), e.to_string()).into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        },
    };
    if state.limits.rate_limited() {
        let client = identity.as_ref().map_or(address, |i| crate::limits::Client::Identity(i.sub.as_str().into()));
        if let Err(wait) = state.limits.check(&client) {
            return too_many(wait);
        }
    }
    let mut req = req;
    if let Some(identity) = identity {
        req.extensions_mut().insert(identity);
    }
    next.run(req).await
}

/// The client's address: as the listener worked it out (behind a trusted proxy, the address it
/// forwards for), else the peer's, else unspecified (tests that build the router alone).
pub(crate) fn client_ip(req: &Request) -> std::net::IpAddr {
    crate::proxies::client_of(req.extensions())
}

/// 429 `rate-limited`, with `Retry-After` (whole seconds, at least 1) and `retryAfterMs`.
pub(crate) fn too_many(wait: std::time::Duration) -> Response {
    let ms = wait.as_millis().max(1) as u64;
    let mut response = ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, "rate-limited", "too many requests")
        .with_details(serde_json::json!({"retryAfterMs": ms}))
        .into_response();
    let secs = ms.div_ceil(1000).to_string();
    if let Ok(v) = HeaderValue::from_str(&secs) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A WebSocket upgrade, on `/ws` or (as the original accepted them) any other path.
async fn upgrade(State(state): State<AppState>, req: Request) -> Response {
    let ip = client_ip(&req);
    let (mut parts, _) = req.into_parts();
    let headers = parts.headers.clone();
    let query = parts.uri.query().map(str::to_owned);
    // The socket stays counted against its caps for as long as the session runs.
    let socket = parts.extensions.get::<crate::listener::SocketSlot>().cloned();
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => crate::ws::upgrade(ws, state, &headers, query.as_deref(), (ip, socket)),
        Err(rejection) => rejection.into_response(),
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
        return upgrade(State(state), req).await;
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
