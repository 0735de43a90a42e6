//! The heartbeat poller: the control plane is the authority on every server's state.
//!
//! Each tracked server gets a task that, while this replica owns it (see [`Cluster`]), polls
//! its agent's `/heartbeat` every `interval` (random phase, ±10 % jitter so 10,000 agents do not
//! all fire at once), with a global cap on polls in flight. Results go to the [`StatusCache`].
//! After every `revive_after_failures` failed polls in a row the driver is asked to revive the
//! agent.
//!
//! Polls fall due on a [`TICK`] grid: the few dozen due in one tick wake the runtime once and
//! their answers come back together, where polls spread over every millisecond would each cost
//! a wake-up of their own (parking and waking was the poller's largest cost in the profile).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

use crate::cache::StatusCache;
use crate::cluster::Cluster;
use crate::config::PollerConfig;
use crate::drivers::Driver;
use crate::metrics::Metrics;
use crate::registry::{Agent, AgentError, Kept, Registry};

/// How often a server is polled while a power action settles, and for how long at most.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);
const FOLLOW_FOR: Duration = Duration::from_secs(120);

/// The grid polls fall due on: 2,000 polls a second come in batches of 40, each poll at most
/// this much later than its jittered time.
const TICK: Duration = Duration::from_millis(20);

/// Tracks servers and keeps their cached status fresh. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Arc<Registry>,
    cache: Arc<dyn StatusCache>,
    metrics: Arc<Metrics>,
    cluster: Arc<Cluster>,
    config: PollerConfig,
    in_flight: Semaphore,
    tasks: Mutex<HashMap<i64, AbortHandle>>,
    /// Where the [`TICK`] grid starts.
    epoch: Instant,
}

impl Poller {
    /// A poller with nothing tracked yet.
    pub fn new(
        registry: Arc<Registry>,
        cache: Arc<dyn StatusCache>,
        metrics: Arc<Metrics>,
        cluster: Arc<Cluster>,
        config: PollerConfig,
    ) -> Poller {
        let in_flight = Semaphore::new(config.max_in_flight);
        Poller {
            inner: Arc::new(Inner {
                registry,
                cache,
                metrics,
                cluster,
                config,
                in_flight,
                tasks: Mutex::new(HashMap::new()),
                epoch: Instant::now(),
            }),
        }
    }

    /// Starts polling a server (no-op if already tracked); `driver` revives its agent.
    pub fn track(&self, server_id: i64, driver: Arc<dyn Driver>) {
        let mut tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.contains_key(&server_id) {
            return;
        }
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move { inner.poll_forever(server_id, driver).await });
        tasks.insert(server_id, task.abort_handle());
    }

    /// Stops polling a server and forgets its status.
    pub async fn untrack(&self, server_id: i64) {
        if let Some(task) = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(&server_id) {
            task.abort();
        }
        self.inner.cache.remove(server_id).await;
    }

    /// Polls one server now (after a change, so the next read is fresh).
    pub async fn poll_now(&self, server_id: i64) {
        let _ = self.inner.poll_once(server_id, &mut KeptFor::default()).await;
    }

    /// Follows a server through a power action: polls it every [`FOLLOW_EVERY`] until it
    /// settles (neither starting nor stopping), for at least a second (a restart passes through
    /// its old state) and at most [`FOLLOW_FOR`]. The API's status then follows the game within
    /// a fraction of a second, not at the next heartbeat.
    pub async fn follow(&self, server_id: i64) {
        use zlh_proto::agent::GameState;
        let began = Instant::now();
        loop {
            let _ = self.inner.poll_once(server_id, &mut KeptFor::default()).await;
            let state =
                self.inner.cache.get_many(&[server_id]).await.remove(&server_id).and_then(|s| s.state);
            let moving =
                matches!(state, Some(GameState::Starting | GameState::Stopping | GameState::Installing));
            let elapsed = began.elapsed();
            if (!moving && elapsed >= Duration::from_secs(1)) || elapsed >= FOLLOW_FOR {
                return;
            }
            tokio::time::sleep(FOLLOW_EVERY).await;
        }
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        for (_, task) in self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
        }
    }
}

impl Inner {
    /// Sleeps `fraction` of an interval, to the next [`TICK`].
    async fn sleep(&self, fraction: f64) {
        let due = Instant::now() + self.config.interval.mul_f64(fraction);
        tokio::time::sleep_until(on_tick(self.epoch, due).into()).await;
    }

    async fn poll_forever(self: Arc<Self>, server_id: i64, driver: Arc<dyn Driver>) {
        let mut changes = self.cluster.changes();
        let mut kept = KeptFor::default();
        self.sleep(fastrand::f64()).await;
        loop {
            if !self.cluster.owns(server_id) {
                // Another replica polls it; look again when who polls what changes.
                kept = KeptFor::default();
                changes.changed().await;
                self.sleep(0.05 * fastrand::f64()).await;
                continue;
            }
            let failures = self.poll_once(server_id, &mut kept).await;
            // Asked again every `revive_after_failures` failures: one revive that failed (an
            // engine restarting, a name not yet released) must not leave the server down.
            if failures.is_some_and(|n| n % self.config.revive_after_failures.max(1) == 0) {
                tracing::warn!(server_id, "agent unreachable; asking the driver to revive it");
                if let Err(e) = driver.revive(server_id).await {
                    tracing::error!(server_id, error = %e, "reviving the agent failed");
                }
            }
            self.sleep(0.9 + 0.2 * fastrand::f64()).await;
        }
    }

    /// Polls once and records the answer; on failure, how many polls in a row failed.
    async fn poll_once(&self, server_id: i64, kept: &mut KeptFor) -> Option<u32> {
        let agent = self.registry.get(server_id)?;
        let _permit = self.in_flight.acquire().await.ok()?;
        let started = Instant::now();
        let answer = poll_agent(agent.as_ref(), kept.for_agent(&agent)).await;
        self.metrics.observe_poll(started.elapsed(), answer.is_ok());
        match answer {
            Ok((readiness, snapshot)) => {
                self.cache.record_success(server_id, readiness, snapshot).await;
                None
            }
            Err(error) => {
                let failures = self.cache.record_failure(server_id, &error).await;
                tracing::debug!(server_id, failures, error = %error, "poll failed");
                Some(failures)
            }
        }
    }
}

/// The first [`TICK`] of the grid from `epoch` at or after `due`.
fn on_tick(epoch: Instant, due: Instant) -> Instant {
    let ticks = due.duration_since(epoch).as_nanos().div_ceil(TICK.as_nanos());
    epoch + Duration::from_nanos((ticks * TICK.as_nanos()) as u64)
}

/// A poll task's kept connection, and the agent (the registry's entry) it was made for: a new
/// entry (a new address) starts afresh.
#[derive(Debug, Default)]
struct KeptFor {
    kept: Kept,
    agent: usize,
}

impl KeptFor {
    fn for_agent(&mut self, agent: &Arc<dyn Agent>) -> &mut Kept {
        let address = Arc::as_ptr(agent).cast::<()>() as usize;
        if self.agent != address {
            *self = KeptFor { kept: Kept::default(), agent: address };
        }
        &mut self.kept
    }
}

/// One poll: `/heartbeat` (readiness and status in one answer) on `kept`'s connection; from an
/// agent older than that route, `/health`, then `/ready` and `/status`.
pub(crate) async fn poll_agent(
    agent: &dyn Agent,
    kept: &mut Kept,
) -> Result<(zlh_proto::agent::Readiness, zlh_proto::agent::StatusSnapshot), AgentError> {
    if !kept.older {
        match agent.heartbeat(kept).await {
            Ok(beat) => return Ok((beat.readiness, beat.status)),
            Err(AgentError::Unsupported) => kept.older = true,
            Err(e) => return Err(e),
        }
    }
    // One after the other, on one keep-alive connection.
    agent.health().await?;
    Ok((agent.ready().await?, agent.status().await?))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::registry::{ByteStream, ConsoleSink, ConsoleStream, Method, Streamed};

    /// An agent from before `/heartbeat`: it answers the three older routes only.
    #[derive(Debug, Default)]
    struct OlderAgent {
        asked: Mutex<Vec<String>>,
    }

    #[async_trait::async_trait]
    impl Agent for OlderAgent {
        async fn request(&self, _: Method, path: &str, _: Option<Value>) -> Result<(u16, Value), AgentError> {
            self.asked.lock().expect("asked").push(path.to_owned());
            let answer = match path {
                "/health" => json!({"status": "ok", "version": "0.9"}),
                "/ready" => json!({"ready": true, "reason": "the server is running"}),
                "/status" => json!({
                    "state": "running", "consecutiveCrashes": 0, "provisioningComplete": true,
                    "agent": {"version": "0.9", "pid": 1, "uptimeMs": 5}
                }),
                _ => return Err(AgentError::Unsupported),
            };
            Ok((200, answer))
        }
        async fn forward(
            &self,
            _: Method,
            _: &str,
            _: Option<String>,
            _: ByteStream,
        ) -> Result<Streamed, AgentError> {
            Err(AgentError::Unsupported)
        }
        async fn console(&self, _: Option<u64>) -> Result<(ConsoleSink, ConsoleStream), AgentError> {
            Err(AgentError::Unsupported)
        }
    }

    #[test]
    fn polls_fall_due_on_the_tick_at_or_after_their_time() {
        let epoch = Instant::now();
        for after_ms in [0, 1, 19, 20, 21, 4_999, 5_010] {
            let due = epoch + Duration::from_millis(after_ms);
            let tick = on_tick(epoch, due);
            assert!(tick >= due && tick - due < TICK, "{after_ms} ms went to {:?}", tick - epoch);
            assert_eq!((tick - epoch).as_nanos() % TICK.as_nanos(), 0);
        }
    }

    #[tokio::test]
    async fn an_agent_without_heartbeat_is_polled_the_older_way_and_not_asked_again() {
        let agent = OlderAgent::default();
        let mut kept = Kept::default();
        for _ in 0..2 {
            let (readiness, status) = poll_agent(&agent, &mut kept).await.expect("polled");
            assert!(readiness.ready);
            assert_eq!(status.state, zlh_proto::agent::GameState::Running);
        }
        let asked = agent.asked.lock().expect("asked").clone();
        assert_eq!(asked, ["/heartbeat", "/health", "/ready", "/status", "/health", "/ready", "/status"]);
    }
}
