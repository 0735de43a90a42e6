//! The agent's clock helper: wall-clock deadlines as tokio instants. (Timestamps themselves
//! are `zlh_proto::time`.)

use std::time::Duration;

use tokio::time::Instant;

/// The monotonic instant of a wall-clock time (ms since the epoch); past times map to now.
pub(crate) fn instant_at_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms()))
}

/// Milliseconds since the Unix epoch, unsigned (as holders and state files record time).
pub(crate) fn now_ms() -> u64 {
    zlh_proto::time::now_ms().max(0) as u64
}

/// RFC 3339 with milliseconds.
pub(crate) fn format_ms(ms: u64) -> String {
    zlh_proto::time::format_ms(ms as i64)
}
