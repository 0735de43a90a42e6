//! Time on the wire: RFC 3339 with milliseconds; internally, milliseconds since the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// RFC 3339 with milliseconds (`2026-11-21T05:32:57.417Z`), as every timestamp on the wire.
pub fn format_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// Reads what [`format_ms`] wrote (any RFC 3339 time), in ms since the epoch.
pub fn parse_ms(text: &str) -> Option<i64> {
    let time = humantime::parse_rfc3339(text).ok()?;
    i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_with_milliseconds() {
        assert_eq!(super::format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(super::parse_ms("2023-11-14T22:13:20.123Z"), Some(1_700_000_000_123));
    }
}
