//! Building server frames for a session.

use mishkah_core::wire::{ServerError, ServerFrame, ServerLog};
use serde_json::{json, Value};

use crate::clock::now_iso;

/// Serializes a frame.
pub fn text(frame: &ServerFrame) -> String {
    serde_json::to_string(frame).expect("frames serialize")
}

/// `server:log`.
pub fn log(server_id: &str, level: &str, message: impl Into<String>, context: Value) -> String {
    text(&ServerFrame::Log(ServerLog {
        level: level.into(),
        message: message.into(),
        context,
        ts: now_iso(),
        server_id: server_id.into(),
    }))
}

/// A structured `server:error` for a request, followed by the original-style `server:log` error
/// that old clients read.
pub fn error_pair(
    server_id: &str,
    code: &str,
    message: &str,
    details: Value,
    request_id: Option<Value>,
    mutation_id: Option<String>,
) -> [String; 2] {
    let context = json!({"code": code, "requestId": request_id, "mutationId": mutation_id, "details": details});
    [
        text(&ServerFrame::Error(ServerError {
            code: code.into(),
            message: message.into(),
            details,
            request_id,
            mutation_id,
        })),
        log(server_id, "error", message, context),
    ]
}
