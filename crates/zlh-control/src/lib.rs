//! `zlh serve`: the control plane. Accounts, servers on a provisioning driver, the agent
//! registry and heartbeat poller, power and console proxying, metrics and the API document.
//!
//! Architecture Invariant: this crate never depends on `zlh-agent`; it speaks to agents only
//! through `zlh_proto` over HTTP and WebSocket (see [`registry`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod activity;
pub mod api;
pub mod artifacts;
pub mod auth;
pub mod cache;
pub mod config;
pub mod db;
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
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use zlh_proto::Secret;
use zlh_proto::api::Role;

use crate::auth::mailer::{Mailer, OutboxMailer};
use crate::auth::rate_limit::Throttle;
use crate::auth::tokens::TokenSigner;
use crate::cache::{MemoryCache, StatusCache};
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

/// A signing key: the configured one, or `<data>/secrets/<name>`, created on first start.
fn secret_key(config: &ControlConfig, name: &str, configured: Option<&Secret>) -> Result<Secret, StartError> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = config.data_dir.join("secrets").join(name);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(Secret::new(key.trim())),
        _ => {}
    }
    let io = |e: std::io::Error| StartError::Io(format!("cannot create {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let key = auth::random_token(32);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(io)?;
        file.write_all(key.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    Ok(Secret::new(key))
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
        let store: Arc<dyn Store> = db::open(&config.database_url()).await?;
        let signer = TokenSigner::new(secret_key(&config, "token.key", config.auth.token_secret.as_ref())?);
        let registry = Arc::new(Registry::default());
        let cache: Arc<dyn StatusCache> = Arc::new(MemoryCache::default());
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
            config.poller.clone(),
        );
        let templates = Templates::new(Some(config.templates_dir()), store.templates().await?);
        let control = Arc::new(ControlPlane {
            templates,
            throttle: Throttle::new(config.auth.failed_login_window),
            mailer: Arc::new(OutboxMailer::new(config.data_dir.join("outbox.log"))),
            tickets: api::TicketBook::new(config.console.ticket_ttl),
            revocations: access::Revocations::default(),
            scheduler: schedules::Scheduler::default(),
            agent_http: RemoteAgent::client(),
            decoy_hash: auth::passwords::hash(&auth::random_token(16)).await,
            artifacts: artifacts::ArtifactStore::new(config.data_dir.join("artifacts")),
            ide: ide::Ide::new(
                TokenSigner::new(secret_key(&config, "ide.key", config.ide.token_secret.as_ref())?),
                &config,
            ),
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
        Ok(control)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ControlConfig {
        &self.config
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
    // No Nagle: small WebSocket frames (consoles, the IDE) must not wait for an ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
        let _ = stream.set_nodelay(true);
    });
    let scheduler = tokio::spawn(schedules::run(Arc::clone(&control)));
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    scheduler.abort();
    served?;
    control.poller.shutdown();
    tracing::info!("control plane stopped");
    Ok(())
}
