//! Failed sign-in limits: a sliding window per email address and per client address.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts failures per key within a window.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// A limiter with this window.
    pub fn new(window: Duration) -> LoginLimiter {
        LoginLimiter { window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when `key` had `limit` failures within the window.
    pub fn check(&self, key: &str, limit: u32, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(key) else { return Ok(()) };
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.len() < limit as usize {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(self.window.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1)))
    }

    /// Records a failure of `key`.
    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of distinct keys: forget keys whose failures all expired.
        if failures.len() > 100_000 {
            let window = self.window;
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        failures.entry(key.to_owned()).or_default().push_back(now);
    }

    /// Forgets `key`'s failures (after a successful sign-in).
    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_within_the_window_only() {
        let limiter = LoginLimiter::new(Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", 3, start).is_ok());
            limiter.record_failure("a", start);
        }
        let retry = limiter.check("a", 3, start + Duration::from_secs(10)).expect_err("limited");
        assert_eq!(retry, Duration::from_secs(50));
        assert!(limiter.check("b", 3, start).is_ok(), "per key");
        assert!(limiter.check("a", 3, start + Duration::from_secs(61)).is_ok(), "window passed");
        limiter.record_failure("a", start + Duration::from_secs(61));
        limiter.clear("a");
        assert!(limiter.check("a", 1, start + Duration::from_secs(62)).is_ok());
    }
}
