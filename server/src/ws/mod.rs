//! The WebSocket gateway (spec §4): `/ws`, and upgrades on any other path as the original accepted.
//! One task per connection (`session`) reads frames, hands writes to the engine, and sends
//! replies, acks (in request order), the branch's events and its live queries' changes (`live`).

mod frames;
mod identity;
mod live;
mod outbound;
mod query;
mod session;
mod topics;
mod writes;

use std::net::IpAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::limits::Client;
use crate::state::AppState;

/// Largest accepted WebSocket message.
pub const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// Upgrades and runs a session. A credential on the upgrade (`Authorization: Bearer`, or
/// `?token=`) must be valid; without one, a server with `--auth required` waits a few seconds for
/// `client:hello {token}`.
pub fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    (ip, socket): (IpAddr, Option<crate::listener::SocketSlot>),
) -> Response {
    let from_query = query.and_then(|q| url_token(q).map(|t| state.auth.verify(&t)));
    let identity = match state.auth.from_headers(headers).or(from_query) {
        Some(Ok(identity)) => Some(identity),
        Some(Err(e)) if state.auth.required() => {
            let error = ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
            return error.into_response();
        }
        _ => None,
    };
    // An identity's sessions are counted apart from its address's anonymous ones, so anonymous
    // sockets cannot take the room a signed-in till behind the same address needs.
    let counted = identity.as_ref().map_or(Client::Address(ip), |i| Client::Identity(i.sub.as_str().into()));
    let Some(slot) = state.limits.open_connection(counted) else {
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-connections",
            "this identity or address has its cap of connections open",
        );
        return error.into_response();
    };
    // Small socket buffers: most connections are idle most of the time (tungstenite's defaults
    // of 128 KiB each would cost ~250 KB per connection); reads of larger frames still work, in
    // more system calls (a pipelining writer measured the same with 512 bytes as with 2 KiB).
    // Writes gather up to 16 KiB before a system call: the frames a session feeds before its
    // flush (acks, queued events) then leave in a few writes instead of one each — half the
    // server's CPU per delivery under fan-out. A buffer is only allocated once something is
    // sent; a connection that has had a burst keeps its 16 KiB.
    ws.max_message_size(MAX_FRAME_BYTES).read_buffer_size(512).write_buffer_size(16 * 1024).on_upgrade(move |ws| {
        let session = session::run(ws, state, identity, ip, slot);
        async move {
            session.await;
            drop(socket);
        }
    })
}

/// The `token` parameter of a query string.
fn url_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| pair.strip_prefix("token=")).map(|t| {
        // Tokens are base64url and dots: nothing to percent-decode but a stray `%2E`.
        t.replace("%2E", ".").replace("%2e", ".")
    })
}
