//! Throttling of guesses (sign-ins, current-password checks, reset requests): growing delays,
//! never a lockout.
//!
//! The first `free` failures of a key within the window cost nothing; after that each failure
//! doubles the wait before the next attempt, up to `max_delay`. A key that has waited is let
//! through, so an attacker is slowed to a trickle while the owner, who fails from elsewhere (or
//! not at all), is never locked out. Failures older than the window are forgotten.
//!
//! Failures are kept in a [`GuessLog`] (the store), so every replica on one database counts
//! the same guesses; a log that cannot be read means "wait", never a free guess.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// How a kind of key is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Failures within the window that cost nothing.
    pub free: u32,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl Rule {
    /// How long a key whose failures within the window were at `failures_ms` (oldest first)
    /// must still wait at `now_ms`; `None` when it may try.
    pub fn wait(self, failures_ms: &[i64], now_ms: i64) -> Option<Duration> {
        let count = failures_ms.len() as u32;
        let last = *failures_ms.last()?;
        if count < self.free {
            return None;
        }
        let doublings = (count - self.free).min(16);
        let delay = Duration::from_secs(1u64 << doublings).min(self.max_delay);
        let ready_at = last.saturating_add(delay.as_millis() as i64);
        (ready_at > now_ms).then(|| Duration::from_millis((ready_at - now_ms) as u64))
    }
}

/// The log could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the log of failed guesses is unavailable")]
pub struct LogUnavailable;

/// Where failed guesses are kept (the store, shared by every replica).
#[async_trait]
pub trait GuessLog: Send + Sync + std::fmt::Debug {
    /// Records a failure of `key` at `at_ms`, forgetting every key's failures before `forget_before_ms`.
    async fn record_guess(&self, key: &str, at_ms: i64, forget_before_ms: i64) -> Result<(), LogUnavailable>;
    /// When `key` failed since `since_ms`, oldest first.
    async fn guesses(&self, key: &str, since_ms: i64) -> Result<Vec<i64>, LogUnavailable>;
    /// Forgets `key`'s failures.
    async fn clear_guesses(&self, key: &str) -> Result<(), LogUnavailable>;
}

/// Failures per key within a window.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    log: Arc<dyn GuessLog>,
}

impl Throttle {
    /// A throttle remembering failures for `window` in `log`.
    pub fn new(window: Duration, log: Arc<dyn GuessLog>) -> Throttle {
        Throttle { window, log }
    }

    fn window_start(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.window.as_millis() as i64)
    }

    /// `Err(wait)` while `key` must still wait before its next attempt.
    pub async fn check(&self, key: &str, rule: Rule, now_ms: i64) -> Result<(), Duration> {
        match self.log.guesses(key, self.window_start(now_ms)).await {
            Ok(failures) => rule.wait(&failures, now_ms).map_or(Ok(()), Err),
            Err(LogUnavailable) => {
                tracing::error!("cannot read the failed guesses; making the guesser wait");
                Err(rule.max_delay)
            }
        }
    }

    /// Records a failure (or a creation) of `key`.
    pub async fn record(&self, key: &str, now_ms: i64) {
        if self.log.record_guess(key, now_ms, self.window_start(now_ms)).await.is_err() {
            tracing::error!("cannot record a failed guess");
        }
    }

    /// Forgets `key`'s failures (after a success).
    pub async fn clear(&self, key: &str) {
        if self.log.clear_guesses(key).await.is_err() {
            tracing::error!("cannot forget failed guesses");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule { free: 3, max_delay: Duration::from_secs(8) };

    #[test]
    fn waits_grow_after_the_free_failures_and_never_become_a_lockout() {
        let start = 1_000_000;
        let mut failures = vec![start; 3];
        assert_eq!(RULE.wait(&failures[..2], start), None, "free failures cost nothing");
        assert_eq!(RULE.wait(&failures, start), Some(Duration::from_secs(1)));
        assert_eq!(RULE.wait(&failures, start + 1000), None, "waited: let through");
        let mut at = start + 1000;
        let mut waits = Vec::new();
        for _ in 0..6 {
            failures.push(at);
            let wait = RULE.wait(&failures, at).expect("must wait");
            waits.push(wait.as_secs());
            at += wait.as_millis() as i64;
        }
        assert_eq!(waits, [2, 4, 8, 8, 8, 8], "doubling, capped");
        assert_eq!(RULE.wait(&[], start), None, "nothing recorded");
    }

    #[derive(Debug)]
    struct Broken;

    #[async_trait]
    impl GuessLog for Broken {
        async fn record_guess(&self, _: &str, _: i64, _: i64) -> Result<(), LogUnavailable> {
            Err(LogUnavailable)
        }
        async fn guesses(&self, _: &str, _: i64) -> Result<Vec<i64>, LogUnavailable> {
            Err(LogUnavailable)
        }
        async fn clear_guesses(&self, _: &str) -> Result<(), LogUnavailable> {
            Err(LogUnavailable)
        }
    }

    #[tokio::test]
    async fn an_unreadable_log_means_wait_not_a_free_guess() {
        let throttle = Throttle::new(Duration::from_secs(600), Arc::new(Broken));
        assert_eq!(throttle.check("a", RULE, 0).await, Err(RULE.max_delay));
    }
}
