//! Prometheus metrics at `GET /metrics`: requests by route and status, poll latency, and
//! agents by state.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use zlh_proto::agent::ServerUsage;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route template (`/api/servers/{id}`), never the raw path: ids would explode the
    /// number of series.
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    server: i64,
}

/// A per-server gauge, rebuilt at every scrape so deleted servers drop out.
type PerServer = Family<ServerLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;
/// Reads one figure of a server's usage.
type Reading = fn(&ServerUsage) -> Option<f64>;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The states reported by the `zlh_agents` gauge (each is set on every scrape, so a state
/// that empties shows 0 instead of its last value).
const STATES: &[&str] = &[
    "stopped",
    "installing",
    "starting",
    "running",
    "stopping",
    "crashed",
    "error",
    "unreachable",
    "unknown",
];

/// Every metric the control plane exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    polls: Family<PollLabels, Histogram>,
    agents: Family<StateLabels, Gauge>,
    polled: Gauge,
    /// Per server, from the usage its agent reported in its last status: no extra call to an
    /// agent or the engine per scrape.
    usage: [(PerServer, Reading); 6],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("zlh");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        let polls = Family::<PollLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "agent_poll_seconds",
            "Duration of one agent poll (health, ready, status)",
            polls.clone(),
        );
        let agents = Family::<StateLabels, Gauge>::default();
        registry.register("agents", "Servers by the state their agent last reported", agents.clone());
        let polled = Gauge::default();
        registry.register(
            "servers_polled",
            "Servers whose agents this replica polls (its share among the live replicas)",
            polled.clone(),
        );
        let usage: [(&str, &str, Reading); 6] = [
            ("server_memory_bytes", "Memory a server's container uses, page cache excluded", |u| {
                u.memory_bytes.map(|b| b as f64)
            }),
            ("server_cpu_seconds", "CPU time a server's container used", |u| u.cpu_seconds),
            ("server_network_receive_bytes", "Bytes a server's container received", |u| {
                u.network_rx_bytes.map(|b| b as f64)
            }),
            ("server_network_transmit_bytes", "Bytes a server's container sent", |u| {
                u.network_tx_bytes.map(|b| b as f64)
            }),
            ("server_disk_used_bytes", "Disk a server uses of its limit", |u| {
                u.disk.map(|d| d.used_bytes as f64)
            }),
            ("server_disk_limit_bytes", "A server's disk limit", |u| u.disk.map(|d| d.limit_bytes as f64)),
        ];
        let usage = usage.map(|(name, help, read)| {
            let family = PerServer::default();
            registry.register(name, help, family.clone());
            (family, read)
        });
        Metrics { registry, requests, polls, agents, polled, usage }
    }

    /// Counts one answered request: `route` is its template (`/api/servers/{id}`), never the
    /// raw path.
    pub fn observe_request(&self, method: String, route: String, status: u16) {
        self.requests.get_or_create(&RequestLabels { method, route, status }).inc();
    }

    /// Records one poll.
    pub fn observe_poll(&self, elapsed: Duration, succeeded: bool) {
        let outcome = if succeeded { "ok" } else { "failed" };
        self.polls.get_or_create(&PollLabels { outcome }).observe(elapsed.as_secs_f64());
    }

    /// The text exposition, after refreshing the gauges: servers by state (`counts`), their
    /// `usage`, and how many this replica polls.
    pub fn render(
        &self,
        counts: &std::collections::HashMap<String, u64>,
        usage: &[(i64, ServerUsage)],
        polled: usize,
    ) -> String {
        self.polled.set(polled as i64);
        for (family, read) in &self.usage {
            family.clear();
            for (server, used) in usage {
                if let Some(value) = read(used) {
                    family.get_or_create(&ServerLabels { server: *server }).set(value);
                }
            }
        }
        for state in STATES {
            let count = counts.get(*state).copied().unwrap_or(0);
            self.agents.get_or_create(&StateLabels { state: (*state).to_owned() }).set(count as i64);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
