//! The status cache: the normalized state of every server, as the poller last saw it.
//!
//! In memory ([`MemoryCache`]) for a lone control plane; on PostgreSQL, where several replicas
//! may share the database, [`SharedCache`] also writes what this replica saw to the store and
//! answers for servers other replicas poll. List views read only from here, so one agent being
//! down never fails them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use zlh_proto::agent::{Readiness, ServerUsage, StatusSnapshot};
use zlh_proto::api::ServerStatus;

use crate::db::Store;
use crate::registry::AgentError;

/// Where normalized statuses are kept.
#[async_trait]
pub trait StatusCache: Send + Sync + std::fmt::Debug {
    /// The agent answered, just now.
    async fn record_success(&self, server_id: i64, readiness: Readiness, snapshot: StatusSnapshot);
    /// The agent did not answer; returns how many polls in a row failed.
    async fn record_failure(&self, server_id: i64, error: &AgentError) -> u32;
    /// Statuses of these servers (a server never polled yet gets [`waiting`]).
    async fn get_many(&self, server_ids: &[i64]) -> HashMap<i64, ServerStatus>;
    /// Forgets a server.
    async fn remove(&self, server_id: i64);
    /// How many servers are in each state (`unreachable` counts apart), for metrics.
    async fn count_by_state(&self) -> HashMap<String, u64>;
    /// What each server used when its agent last answered, for metrics.
    async fn usage(&self) -> Vec<(i64, ServerUsage)>;
}

/// The status of a server nobody has polled yet.
pub fn waiting() -> ServerStatus {
    ServerStatus {
        state: None,
        ready: false,
        reason: "waiting for the first heartbeat from the server's agent".into(),
        unreachable: false,
        last_seen: None,
        last_crash_classification: None,
        detail: None,
    }
}

#[derive(Debug)]
struct Entry {
    status: ServerStatus,
    failures: u32,
    /// When this replica recorded it (ms since the epoch): the newest of two views wins.
    recorded_at_ms: i64,
}

/// The in-memory cache.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: RwLock<HashMap<i64, Entry>>,
}

#[async_trait]
impl StatusCache for MemoryCache {
    async fn record_success(&self, server_id: i64, readiness: Readiness, snapshot: StatusSnapshot) {
        let now = zlh_proto::time::now_ms();
        let status = ServerStatus {
            state: Some(snapshot.state),
            ready: readiness.ready,
            reason: readiness.reason,
            unreachable: false,
            last_seen: Some(zlh_proto::time::format_ms(now)),
            last_crash_classification: snapshot.last_crash_classification,
            detail: Some(snapshot),
        };
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server_id, Entry { status, failures: 0, recorded_at_ms: now });
    }

    async fn record_failure(&self, server_id: i64, error: &AgentError) -> u32 {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(server_id).or_insert_with(|| Entry {
            status: waiting(),
            failures: 0,
            recorded_at_ms: 0,
        });
        entry.failures += 1;
        entry.recorded_at_ms = zlh_proto::time::now_ms();
        entry.status.unreachable = true;
        entry.status.ready = false;
        entry.status.reason = error.to_string();
        entry.failures
    }

    async fn get_many(&self, server_ids: &[i64]) -> HashMap<i64, ServerStatus> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        server_ids
            .iter()
            .map(|id| (*id, entries.get(id).map_or_else(waiting, |entry| entry.status.clone())))
            .collect()
    }

    async fn remove(&self, server_id: i64) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(&server_id);
    }

    async fn count_by_state(&self) -> HashMap<String, u64> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        let mut counts = HashMap::new();
        for entry in entries.values() {
            let name = match (entry.status.unreachable, entry.status.state) {
                (true, _) => "unreachable",
                (false, Some(state)) => state.as_str(),
                (false, None) => "unknown",
            };
            *counts.entry(name.to_owned()).or_insert(0) += 1;
        }
        counts
    }

    async fn usage(&self) -> Vec<(i64, ServerUsage)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .filter_map(|(id, entry)| Some((*id, entry.status.detail.as_ref()?.usage.clone()?)))
            .collect()
    }
}

impl MemoryCache {
    /// What this replica recorded of these servers, and when.
    fn recorded(&self, server_ids: impl IntoIterator<Item = i64>) -> Vec<(i64, ServerStatus, i64)> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        server_ids
            .into_iter()
            .filter_map(|id| entries.get(&id).map(|entry| (id, entry.status.clone(), entry.recorded_at_ms)))
            .collect()
    }
}

/// The cache of replicas sharing a database: what this replica polls is kept in memory and
/// written to the store by [`SharedCache::flush`]; a read takes the newer of this replica's view
/// and the store's, so a server another replica polls shows what that replica saw.
#[derive(Debug)]
pub struct SharedCache {
    local: MemoryCache,
    store: Arc<dyn Store>,
    /// Recorded since the last flush.
    unflushed: Mutex<HashSet<i64>>,
}

impl SharedCache {
    /// A cache sharing statuses through `store`.
    pub fn new(store: Arc<dyn Store>) -> SharedCache {
        SharedCache { local: MemoryCache::default(), store, unflushed: Mutex::new(HashSet::new()) }
    }

    fn unflushed(&self) -> std::sync::MutexGuard<'_, HashSet<i64>> {
        self.unflushed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes what was recorded since the last flush to the store.
    pub async fn flush(&self) {
        let ids: Vec<i64> = self.unflushed().drain().collect();
        if ids.is_empty() {
            return;
        }
        let rows: Vec<(i64, String, i64)> = self
            .local
            .recorded(ids.iter().copied())
            .into_iter()
            .filter_map(|(id, status, at)| Some((id, serde_json::to_string(&status).ok()?, at)))
            .collect();
        if let Err(e) = self.store.put_statuses(&rows).await {
            tracing::warn!(error = %e, "cannot share statuses; trying again at the next flush");
            self.unflushed().extend(ids);
        }
    }
}

#[async_trait]
impl StatusCache for SharedCache {
    async fn record_success(&self, server_id: i64, readiness: Readiness, snapshot: StatusSnapshot) {
        self.local.record_success(server_id, readiness, snapshot).await;
        self.unflushed().insert(server_id);
    }

    async fn record_failure(&self, server_id: i64, error: &AgentError) -> u32 {
        let failures = self.local.record_failure(server_id, error).await;
        self.unflushed().insert(server_id);
        failures
    }

    async fn get_many(&self, server_ids: &[i64]) -> HashMap<i64, ServerStatus> {
        if server_ids.is_empty() {
            return HashMap::new();
        }
        let mut found: HashMap<i64, (ServerStatus, i64)> = match self.store.statuses(server_ids).await {
            Ok(stored) => stored
                .into_iter()
                .filter_map(|(id, (text, at))| Some((id, (serde_json::from_str(&text).ok()?, at))))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read shared statuses; showing this replica's");
                HashMap::new()
            }
        };
        for (id, status, at) in self.local.recorded(server_ids.iter().copied()) {
            if found.get(&id).is_none_or(|(_, stored_at)| *stored_at < at) {
                found.insert(id, (status, at));
            }
        }
        server_ids
            .iter()
            .map(|id| (*id, found.remove(id).map_or_else(waiting, |(status, _)| status)))
            .collect()
    }

    async fn remove(&self, server_id: i64) {
        self.local.remove(server_id).await;
        self.unflushed().remove(&server_id);
    }

    async fn count_by_state(&self) -> HashMap<String, u64> {
        self.local.count_by_state().await
    }

    async fn usage(&self) -> Vec<(i64, ServerUsage)> {
        self.local.usage().await
    }
}
