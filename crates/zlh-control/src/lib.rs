//! `zlh serve`: the control plane. Accounts, servers on a provisioning driver, the agent
//! registry and heartbeat poller, power and console proxying, metrics and the API document.
//!
//! Architecture Invariant: this crate never depends on `zlh-agent`; it speaks to agents only
//! through `zlh_proto` over HTTP and WebSocket (see [`registry`]).
// One `unsafe` block, allowed where it is: `ide::joined` asks the scheduler for a short slice.
#![deny(unsafe_code)]

pub mod access;
pub mod activity;
pub mod api;
pub mod artifacts;
pub mod auth;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod db;
pub mod drain;
pub mod drivers;
pub mod errors;
pub mod http;
pub mod ide;
pub mod install;
pub mod metrics;
pub mod poller;
pub mod portal;
pub mod provision;
pub mod registry;
pub mod schedules;
pub mod templates;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use zlh_proto::Secret;
use zlh_proto::api::Role;

use crate::auth::mailer::{Mailer, OutboxMailer};
use crate::auth::rate_limit::{GuessLog, Throttle};
use crate::auth::tokens::TokenSigner;
use crate::cache::{MemoryCache, SharedCache, StatusCache};
use crate::cluster::Cluster;
pub use crate::config::ControlConfig;
use crate::config::DriverKind;
use crate::db::Store;
use crate::drivers::docker::DockerDriver;
use crate::drivers::external::ExternalDriver;
use crate::drivers::local::LocalDriver;
use crate::drivers::{Driver, Drivers};
use crate::metrics::Metrics;
use crate::poller::Poller;
use crate::registry::{Registry, RemoteAgent};
use crate::templates::Templates;

/// The generation replicas follow for access changes.
const ACCESS: &str = "access";

/// Everything the handlers share. Its parts are the crate's own: other crates open it, run it
/// and read its configuration.
#[derive(Debug)]
pub struct ControlPlane {
    /// Configuration.
    pub(crate) config: ControlConfig,
    /// Users, sessions, servers.
    pub(crate) store: Arc<dyn Store>,
    /// Agents by server id.
    pub(crate) registry: Arc<Registry>,
    /// Last known status of every server.
    pub(crate) cache: Arc<dyn StatusCache>,
    /// The same cache when replicas share it through the store (PostgreSQL), to flush.
    pub(crate) shared_cache: Option<Arc<SharedCache>>,
    /// The replicas on this database, and which agents this one polls.
    pub(crate) cluster: Arc<Cluster>,
    /// Where this replica is in a graceful stop.
    pub(crate) drain: drain::Drain,
    /// The heartbeat poller.
    pub(crate) poller: Poller,
    /// Where servers run.
    pub(crate) drivers: Drivers,
    /// Game templates, read again when they change.
    pub(crate) templates: Templates,
    /// Signs access (and IDE) tokens.
    pub(crate) signer: TokenSigner,
    /// Growing delays after failed guesses.
    pub(crate) throttle: Throttle,
    /// Sends password reset messages.
    pub(crate) mailer: Arc<dyn Mailer>,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Console tickets.
    pub(crate) tickets: api::TicketBook,
    /// Wakes live connections when someone's access changed.
    pub(crate) revocations: access::Revocations,
    /// Runs servers' schedules.
    pub(crate) scheduler: schedules::Scheduler,
    /// Connection pool for agents.
    pub(crate) agent_http: reqwest::Client,
    /// Hash of a random password, for sign-ins with unknown emails.
    pub(crate) decoy_hash: String,
    /// The artifact store served at `/artifacts/`.
    pub(crate) artifacts: artifacts::ArtifactStore,
    /// The browser IDE's keys and proxy.
    pub(crate) ide: ide::Ide,
    /// The node servers are created on.
    pub(crate) node: db::Node,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or a secret file is unusable.
    #[error("{0}")]
    Io(String),
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Store(#[from] db::StoreError),
}

/// A signing key: the configured one, or the one every replica on this database shares (the
/// first to start stores it; a key an older version kept in `<data>/secrets/<name>.key` becomes
/// it, so tokens issued before stay valid).
async fn signing_key(
    config: &ControlConfig,
    store: &dyn Store,
    name: &str,
    configured: Option<&Secret>,
) -> Result<Secret, StartError> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let kept = std::fs::read_to_string(config.data_dir.join("secrets").join(format!("{name}.key")));
    let candidate = match kept {
        Ok(key) if !key.trim().is_empty() => key.trim().to_owned(),
        _ => auth::random_token(32),
    };
    Ok(Secret::new(store.signing_key(name, &candidate).await?))
}

impl ControlPlane {
    /// Opens the data directory and database, and adopts every server found there.
    /// `zlh_exe` is the binary the local driver starts agents with.
    pub async fn open(mut config: ControlConfig, zlh_exe: PathBuf) -> Result<Arc<ControlPlane>, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| StartError::Io(format!("cannot create {}: {e}", config.data_dir.display())))?;
        // Agents outlive this process and may be adopted by one started elsewhere: every path
        // handed to them is absolute.
        config.data_dir = config
            .data_dir
            .canonicalize()
            .map_err(|e| StartError::Io(format!("cannot resolve {}: {e}", config.data_dir.display())))?;
        let database_url = config.database_url();
        let store: Arc<dyn Store> = db::open(&database_url).await?;
        let signer = TokenSigner::new(
            signing_key(&config, &*store, "token", config.auth.token_secret.as_ref()).await?,
        );
        let ide_signer =
            TokenSigner::new(signing_key(&config, &*store, "ide", config.ide.token_secret.as_ref()).await?);
        // Only PostgreSQL is shared by several replicas.
        let shared = db::is_postgres(database_url.expose());
        let cluster = Arc::new(Cluster::new(Arc::clone(&store), config.poller.interval, shared));
        cluster.beat().await?;
        let registry = Arc::new(Registry::default());
        let shared_cache = shared.then(|| Arc::new(SharedCache::new(Arc::clone(&store))));
        let cache: Arc<dyn StatusCache> = match &shared_cache {
            Some(shared) => Arc::clone(shared) as Arc<dyn StatusCache>,
            None => Arc::new(MemoryCache::default()),
        };
        let metrics = Arc::new(Metrics::new());
        let agent_defaults = config.local_driver.agent_defaults.clone();
        let default: Arc<dyn Driver> = match config.driver {
            DriverKind::Local => {
                Arc::new(LocalDriver::new(config.data_dir.join("servers"), zlh_exe.clone(), agent_defaults))
            }
            DriverKind::Docker => Arc::new(
                DockerDriver::new(
                    config.docker.clone(),
                    &config.node,
                    config.data_dir.join("docker"),
                    zlh_exe.clone(),
                    agent_defaults,
                )
                .map_err(|e| StartError::Io(e.to_string()))?,
            ),
        };
        let capacity = db::Capacity {
            memory_mb: match config.node.memory_mb {
                Some(mb) => mb,
                None => default.host_memory_mb().await.unwrap_or(0),
            },
            disk_mb: config.node.disk_mb.unwrap_or(0),
        };
        let node = &config.node;
        let node = store
            .upsert_node(&node.name, &node.public_address, node.first_port, node.last_port, capacity)
            .await?;
        let drivers = Drivers { default, external: Arc::new(ExternalDriver) };
        let poller = Poller::new(
            Arc::clone(&registry),
            Arc::clone(&cache),
            Arc::clone(&metrics),
            Arc::clone(&cluster),
            config.poller.clone(),
        );
        let templates = Templates::new(Some(config.templates_dir()), store.templates().await?);
        let control = Arc::new(ControlPlane {
            templates,
            throttle: Throttle::new(config.auth.failed_login_window, Arc::clone(&store) as Arc<dyn GuessLog>),
            mailer: Arc::new(OutboxMailer::new(config.data_dir.join("outbox.log"))),
            tickets: api::TicketBook::new(config.console.ticket_ttl),
            revocations: access::Revocations::default(),
            scheduler: schedules::Scheduler::default(),
            agent_http: RemoteAgent::client(),
            decoy_hash: auth::passwords::hash(&auth::random_token(16)).await,
            artifacts: artifacts::ArtifactStore::new(config.data_dir.join("artifacts")),
            ide: ide::Ide::new(ide_signer, &config),
            shared_cache,
            cluster,
            drain: drain::Drain::default(),
            config,
            store,
            node,
            registry,
            cache,
            poller,
            drivers,
            signer,
            metrics,
        });
        provision::adopt_all(&control).await?;
        control.fail_orphaned_work(&control.cluster.live()).await;
        Ok(control)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ControlConfig {
        &self.config
    }

    /// Someone's access narrowed or ended: live consoles and IDE sessions look again, on this
    /// replica now and on the others at their next beat.
    pub(crate) async fn access_changed(&self) {
        self.revocations.notify();
        match self.store.bump_generation(ACCESS).await {
            Ok(generation) => self.revocations.follow(generation),
            Err(e) => tracing::error!(error = %e, "cannot tell other replicas that access changed"),
        }
    }

    /// The schedule runs and installs of replicas not in `live` (they stopped in the middle):
    /// failed, saying so.
    async fn fail_orphaned_work(&self, live: &[String]) {
        if let Err(e) = self.store.fail_unfinished_runs(zlh_proto::time::now_ms(), live).await {
            tracing::warn!(error = %e, "cannot close the runs of a control plane that stopped");
        }
        let why = "the control plane running it stopped; retry it";
        if let Err(e) = self.store.fail_orphaned_installs(live, why).await {
            tracing::warn!(error = %e, "cannot close the installs of a control plane that stopped");
        }
    }

    /// One beat: says this replica is alive, learns who else is, and follows what they did
    /// (access changes, servers created and deleted, work left by replicas that died).
    async fn beat(self: &Arc<Self>) {
        // Stopping: it left the cluster, and must not come back by beating.
        if self.drain.phase() != drain::Phase::Serving {
            return;
        }
        let (was_alone, before) = (self.cluster.alone(), self.cluster.live());
        let live = match self.cluster.beat().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "cannot beat; polling as before");
                return;
            }
        };
        if self.drain.phase() != drain::Phase::Serving {
            return; // it left meanwhile
        }
        if before.iter().any(|replica| !live.contains(replica)) {
            self.fail_orphaned_work(&live).await;
        }
        // Alone, everything was done here; once more after the last other replica left.
        if self.cluster.alone() && was_alone {
            return;
        }
        match self.store.generation(ACCESS).await {
            Ok(generation) => self.revocations.follow(generation),
            Err(e) => tracing::warn!(error = %e, "cannot read the access generation"),
        }
        if let Err(e) = provision::follow_others(self, &live).await {
            tracing::warn!(error = %e, "cannot follow the other replicas' servers");
        }
    }

    /// Creates the first admin when there is no user yet. Returns the credentials it used
    /// (generating a password when none is given), to be shown once.
    pub async fn ensure_first_admin(
        &self,
        email: &str,
        password: Option<String>,
    ) -> Result<Option<(String, String)>, StartError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = password.unwrap_or_else(|| auth::random_token(15));
        let hash = auth::passwords::hash(&password).await;
        let admin = self
            .store
            .create_user(&email.trim().to_lowercase(), &hash, Role::Admin, true, zlh_proto::time::now_ms())
            .await?;
        if generated {
            // It was shown in a terminal: the portal asks for one of the admin's own.
            self.store.mark_password_generated(admin.id).await?;
        }
        Ok(Some((email.to_owned(), password)))
    }
}

/// Serves the API on an already-bound listener until `shutdown` resolves. Servers keep running
/// after it returns: their agents are separate processes that the next start adopts.
pub async fn run(
    control: Arc<ControlPlane>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "control plane listening");
    let app = http::router(Arc::clone(&control)).into_make_service_with_connect_info::<SocketAddr>();
    let front = ide::listen(listener, Arc::clone(&control))?;
    // The IDE's thread serves its sockets until this drops, after they finished or were cut.
    let _ide_worker = front.ide_worker();
    // Tapped (with nothing to do) because axum gives connect info for tapped listeners.
    let listener = axum::serve::ListenerExt::tap_io(front, |_| ());
    let scheduler = tokio::spawn(schedules::run(Arc::clone(&control)));
    let in_touch = tokio::spawn(keep_in_touch(Arc::clone(&control)));
    let leaving = Arc::clone(&control);
    let drained = async move {
        shutdown.await;
        leaving.drain.enter(drain::Phase::Leaving);
        let alone = leaving.cluster.alone();
        // The others take this replica's agents and work now.
        leaving.cluster.leave().await;
        if !alone {
            tokio::time::sleep(leaving.config.drain_delay).await;
        }
        leaving.drain.enter(drain::Phase::Closing);
    };
    let served = axum::serve(listener, app).with_graceful_shutdown(drained).await;
    let still_open = control.drain.sockets_closed().await;
    if still_open > 0 {
        tracing::warn!(still_open, "sockets still open are cut");
    }
    scheduler.abort();
    in_touch.abort();
    served?;
    control.poller.shutdown();
    if let Some(shared) = &control.shared_cache {
        shared.flush().await;
    }
    tracing::info!("control plane stopped");
    Ok(())
}

/// Beats every [`Cluster::beat_every`] and, when statuses are shared, writes them every
/// half second, until aborted.
async fn keep_in_touch(control: Arc<ControlPlane>) {
    let mut beats = tokio::time::interval(control.cluster.beat_every());
    let mut flushes = tokio::time::interval(std::time::Duration::from_millis(500));
    for ticks in [&mut beats, &mut flushes] {
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = beats.tick() => control.beat().await,
            _ = flushes.tick() => if let Some(shared) = &control.shared_cache { shared.flush().await },
        }
    }
}
