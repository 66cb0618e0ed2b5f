//! Timestamps as the original system writes them: ISO-8601, UTC, millisecond precision
//! (`2025-12-06T14:22:20.349Z`). The core never reads a clock; callers pass a [`Timestamp`] in.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// A point in time, in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// `2025-12-06T14:22:20.349Z`.
    pub fn to_iso(self) -> String {
        match Utc.timestamp_millis_opt(self.0).single() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            // Out of chrono's range: clamp rather than panic; such a clock is broken anyway.
            None => "1970-01-01T00:00:00.000Z".to_owned(),
        }
    }

    /// Parses the timestamp forms real clients send: RFC 3339 with any offset, a naive
    /// `YYYY-MM-DD[T| ]HH:MM[:SS[.fff]]` read as UTC, or a bare date (midnight UTC).
    pub fn parse(text: &str) -> Option<Timestamp> {
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Some(Timestamp(t.timestamp_millis()));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Some(Timestamp(t.and_utc().timestamp_millis()));
            }
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        Some(Timestamp(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis()))
    }
}

/// Normalizes a date (`YYYY-MM-DD`), accepting any timestamp form [`Timestamp::parse`] accepts.
pub fn normalize_date(text: &str) -> Option<String> {
    let t = Timestamp::parse(text)?;
    let dt = Utc.timestamp_millis_opt(t.0).single()?;
    Some(dt.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(Timestamp(1_765_030_940_349).to_iso(), "2025-12-06T14:22:20.349Z");
    }

    #[test]
    fn parses_offsets_naive_and_dates() {
        let z = Timestamp::parse("2025-12-06T14:22:20.349Z").unwrap();
        assert_eq!(Timestamp::parse("2025-12-06T16:22:20.349+02:00"), Some(z));
        assert_eq!(Timestamp::parse("2025-12-06 14:22:20.349"), Some(z));
        assert_eq!(Timestamp::parse("2024-02-18").unwrap().to_iso(), "2024-02-18T00:00:00.000Z");
        assert_eq!(Timestamp::parse("not a date"), None);
        assert_eq!(normalize_date("2024-02-18T19:00:00Z").as_deref(), Some("2024-02-18"));
    }
}
