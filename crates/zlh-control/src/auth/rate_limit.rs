//! Throttling of guesses (sign-ins, current-password checks, reset requests): growing delays,
//! never a lockout.
//!
//! The first `free` failures of a key within the window cost nothing; after that each failure
//! doubles the wait before the next attempt, up to `max_delay`. A key that has waited is let
//! through, so an attacker is slowed to a trickle while the owner, who fails from elsewhere (or
//! not at all), is never locked out. Failures older than the window are forgotten.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a kind of key is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Failures within the window that cost nothing.
    pub free: u32,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

/// Failures per key within a window.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// A throttle remembering failures for `window`.
    pub fn new(window: Duration) -> Throttle {
        Throttle { window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `key` must still wait before its next attempt.
    pub fn check(&self, key: &str, rule: Rule, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = failures.get_mut(key) else { return Ok(()) };
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        let count = times.len() as u32;
        let (Some(last), true) = (times.back().copied(), count >= rule.free) else { return Ok(()) };
        let doublings = (count - rule.free).min(16);
        let delay = Duration::from_secs(1u64 << doublings).min(rule.max_delay);
        match (last + delay).checked_duration_since(now) {
            Some(wait) if !wait.is_zero() => Err(wait),
            _ => Ok(()),
        }
    }

    /// Records a failure (or a creation) of `key`.
    pub fn record(&self, key: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of distinct keys: forget keys whose failures all expired.
        if failures.len() > 100_000 {
            let window = self.window;
            failures.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        failures.entry(key.to_owned()).or_default().push_back(now);
    }

    /// Forgets `key`'s failures (after a success).
    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { free: 3, max_delay: Duration::from_secs(8) };

    #[test]
    fn waits_grow_after_the_free_failures_and_never_become_a_lockout() {
        let throttle = Throttle::new(Duration::from_secs(600));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check("a", RULE, start).is_ok());
            throttle.record("a", start);
        }
        assert_eq!(throttle.check("a", RULE, start), Err(Duration::from_secs(1)));
        assert!(throttle.check("a", RULE, start + Duration::from_secs(1)).is_ok(), "waited: let through");
        let mut at = start + Duration::from_secs(1);
        let mut waits = Vec::new();
        for _ in 0..6 {
            throttle.record("a", at);
            let wait = throttle.check("a", RULE, at).expect_err("must wait");
            waits.push(wait.as_secs());
            at += wait;
        }
        assert_eq!(waits, [2, 4, 8, 8, 8, 8], "doubling, capped");
        assert!(throttle.check("b", RULE, start).is_ok(), "per key");
        assert!(
            throttle.check("a", RULE, at + Duration::from_secs(600)).is_ok(),
            "forgotten after the window"
        );
        throttle.clear("a");
        assert!(throttle.check("a", RULE, at).is_ok());
    }
}
