//! Timestamps: unix milliseconds inside, ISO 8601 UTC with milliseconds outside.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-23T10:00:00.123Z`.
pub fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses RFC 3339 into unix milliseconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_round_trip() {
        let s = super::iso(1_763_900_000_123);
        assert_eq!(s, "2025-11-23T12:13:20.123Z");
        assert_eq!(super::parse_iso(&s), Some(1_763_900_000_123));
    }
}
