//! The server's clock: the only place that reads system time (the core is given it).

use std::time::{SystemTime, UNIX_EPOCH};

use mishkah_core::Timestamp;

pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    Timestamp(ms)
}

/// Now, ISO-8601.
pub fn now_iso() -> String {
    now().to_iso()
}
