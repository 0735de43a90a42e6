//! The status cache: the normalized state of every server, as the poller last saw it.
//!
//! In memory by default; a Redis implementation (`agent:<id>`) lets several control-plane
//! replicas share it. List views read only from here, so one agent being down never fails them.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use zlh_proto::agent::{Readiness, ServerUsage, StatusSnapshot};
use zlh_proto::api::ServerStatus;

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
}

/// The in-memory cache.
#[derive(Debug, Default)]
pub struct MemoryCache {
    entries: RwLock<HashMap<i64, Entry>>,
}

#[async_trait]
impl StatusCache for MemoryCache {
    async fn record_success(&self, server_id: i64, readiness: Readiness, snapshot: StatusSnapshot) {
        let status = ServerStatus {
            state: Some(snapshot.state),
            ready: readiness.ready,
            reason: readiness.reason,
            unreachable: false,
            last_seen: Some(zlh_proto::time::format_ms(zlh_proto::time::now_ms())),
            last_crash_classification: snapshot.last_crash_classification,
            detail: Some(snapshot),
        };
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(server_id, Entry { status, failures: 0 });
    }

    async fn record_failure(&self, server_id: i64, error: &AgentError) -> u32 {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let entry = entries.entry(server_id).or_insert_with(|| Entry { status: waiting(), failures: 0 });
        entry.failures += 1;
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
