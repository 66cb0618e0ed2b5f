//! The WebSocket gateway (spec §4): `/ws`, and upgrades on any other path as the original accepted.
//! One task per connection (`session`) reads frames, hands writes to the engine, and sends
//! replies, acks (in request order), the branch's events and its live queries' changes (`live`).

mod frames;
mod live;
mod session;
mod topics;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::Response;

use crate::state::AppState;

/// Largest accepted WebSocket message.
pub const MAX_FRAME_BYTES: usize = 2 * 1024 * 1024;

/// Upgrades and runs a session.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    // Small socket buffers: most connections are idle most of the time (tungstenite's defaults
    // of 128 KiB each would cost ~250 KB per connection); reads of larger frames still work.
    ws.max_message_size(MAX_FRAME_BYTES)
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| session::run(socket, state))
}
