//! Creating, deleting and adopting servers: the flows that span the store, the driver, the
//! registry and the poller, each of which leaves no half-made server behind.
//!
//! Creation answers only after the agent reports **semantic** readiness; on failure or timeout
//! everything made so far is removed and the error says why. The work runs in its own task, so
//! a client that disconnects does not cut it in half.

use std::sync::Arc;
use std::time::{Duration, Instant};

use zlh_proto::agent::GameState;
use zlh_proto::agent_config::DevSection;
use zlh_proto::api::{CreateServer, Lifecycle, LimitsRequest, ResourceLimits, Role, ServerKind};
use zlh_proto::catalog::Kind;
use zlh_proto::time::now_ms;

use crate::ControlPlane;
use crate::artifacts::ArtifactError;
use crate::db::{NewServer, Server, StoreError, User};
use crate::drivers::{AgentSpec, DriverError, Teardown};
use crate::registry::{Agent, AgentEndpoint, RemoteAgent};
use crate::templates::TemplateError;

/// Why a server could not be created or removed. Every message is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The request names no usable template.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The request asks for something the artifact store does not have.
    #[error("{0}")]
    Unavailable(String),
    /// The artifact catalog cannot be read.
    #[error(transparent)]
    Catalog(#[from] ArtifactError),
    /// The driver could not make the server's place.
    #[error("the server could not be created: {0}")]
    Driver(DriverError),
    /// The agent gave up before the server was ready.
    #[error("the server failed to start: {0}")]
    FailedToStart(String),
    /// The server was not ready in time.
    #[error("the server did not become ready within {within}: {last}")]
    Timeout {
        /// The configured timeout, for people.
        within: String,
        /// What the agent said last.
        last: String,
    },
    /// A driver could not remove everything; the delete is retried at the next start.
    #[error("the server could not be removed completely: {0}")]
    Incomplete(DriverError),
    /// Every game port of the node is taken.
    #[error("no game port is free on this node; ask the operator for a larger port range")]
    NoFreePorts,
    /// The node has not the memory or disk the server's limits need.
    #[error("this node has no room for a server of that size; choose smaller limits or ask the operator")]
    NodeFull,
    /// Limits outside what the operator allows.
    #[error("{0}")]
    Limits(String),
    /// Something only an admin may create.
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The provisioning task ended without an answer (a panic).
    #[error("provisioning stopped unexpectedly")]
    Aborted,
}

impl From<StoreError> for ProvisionError {
    fn from(error: StoreError) -> ProvisionError {
        match error {
            StoreError::NoFreePorts => ProvisionError::NoFreePorts,
            StoreError::NodeFull => ProvisionError::NodeFull,
            error => ProvisionError::Store(error),
        }
    }
}

/// Creates a server, with its ports, and waits until its agent is ready.
pub(crate) async fn create(
    control: &Arc<ControlPlane>,
    owner: &User,
    request: &CreateServer,
) -> Result<Server, ProvisionError> {
    permitted(control, owner, request)?;
    let plan = control.templates.current().plan_for(request)?;
    let asked = request.limits.unwrap_or_default();
    let limits =
        control.allowed_limits(control.config.docker.limits.resolved().with(&plan.limits).with(&asked))?;
    let (dev, runtime_version) = match request.kind {
        ServerKind::Dev => {
            let (dev, version) = dev_section(control, request).await?;
            (Some(dev), version)
        }
        ServerKind::Game => (None, None),
    };
    let new = NewServer {
        owner_id: owner.id,
        name: request.name.trim().to_owned(),
        kind: request.kind,
        template: request.template.clone(),
        runtime: request.runtime.clone(),
        runtime_version,
        enable_code_server: request.enable_code_server,
        driver: control.drivers.default.name().to_owned(),
        node_id: Some(control.node.id),
        limits: control.drivers.default.enforces_limits().then_some(limits),
        replica: control.cluster.id().to_owned(),
    };
    // Customers have a limit; admins do not.
    let limit = (owner.role != Role::Admin).then_some(control.config.provisioning.max_servers_per_user);
    let server = control.store.insert_server(new, limit, now_ms()).await.map_err(|e| match e {
        StoreError::LimitReached => ProvisionError::Forbidden(format!(
            "you have {} servers, as many as this host allows; delete one first",
            limit.unwrap_or_default()
        )),
        e => e.into(),
    })?;
    let id = server.id;
    tracing::info!(server_id = id, owner_id = owner.id, kind = server.kind.as_str(), "provisioning");
    let task = tokio::spawn({
        let control = Arc::clone(control);
        let catalog_url = control.config.catalog_url();
        async move {
            let outcome = async {
                let ports = control.store.allocate_ports(control.node.id, id, &plan.ports).await?;
                let mut game = plan.with_ports(&ports);
                // A server starts by itself only when asked to, and never before its install.
                game.autostart = plan.start && plan.install.is_none();
                let image = plan.image.as_deref().map(|image| control.config.image_for(image));
                let spec = AgentSpec { game, dev, catalog_url, ports, image, limits };
                provision(&control, id, &spec).await?;
                if let Some(step) = plan.install.clone() {
                    crate::install::begin(&control, id, step, plan.start).await?;
                }
                Ok::<(), ProvisionError>(())
            }
            .await;
            if let Err(error) = &outcome {
                tracing::warn!(server_id = id, %error, "provisioning failed; cleaning up");
                remove(&control, id).await;
            }
            outcome
        }
    });
    task.await.map_err(|_| ProvisionError::Aborted)??;
    control.store.server(id).await?.ok_or(ProvisionError::Aborted)
}

/// Whether `owner` may create what `request` asks for. A customer's server runs what a template
/// says, never a command of their own: that is for admins (`custom`). On the local driver a dev
/// server's shell is this machine's user, so only admins get one (unless the operator says
/// otherwise).
fn permitted(control: &ControlPlane, owner: &User, request: &CreateServer) -> Result<(), ProvisionError> {
    if owner.role == Role::Admin {
        return Ok(());
    }
    if request.kind == ServerKind::Game && request.template.as_deref() == Some(crate::templates::CUSTOM) {
        return Err(ProvisionError::Forbidden(
            "only an admin can create a server with its own command (custom); pick a template".into(),
        ));
    }
    let local = control.config.driver == crate::config::DriverKind::Local;
    if request.kind == ServerKind::Dev && local && !control.config.local_driver.customer_dev_servers {
        return Err(ProvisionError::Forbidden(
            "dev servers on this host run as its own user, so only an admin can create them".into(),
        ));
    }
    Ok(())
}

/// The `[dev]` section of a dev server's agent, with the runtime version resolved, after
/// checking the catalog has what the request asks for.
async fn dev_section(
    control: &ControlPlane,
    request: &CreateServer,
) -> Result<(DevSection, Option<String>), ProvisionError> {
    let catalog = control.catalog().await?;
    let mut dev = DevSection::new(control.config.catalog_url());
    if let Some(runtime) = request.runtime.as_deref().filter(|r| !r.is_empty()) {
        let choice = match request.version.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => catalog.artifact(Kind::Runtime, runtime, v).map(|_| v.to_owned()),
            None => catalog.latest(Kind::Runtime, runtime).map(str::to_owned),
        };
        let choice = choice.ok_or_else(|| {
            let asked = request.version.as_deref().unwrap_or("");
            ProvisionError::Unavailable(format!(
                "the runtime {runtime} {asked} is not available (see GET /api/dev/runtimes)"
            ))
        })?;
        dev.runtime = Some(runtime.to_owned());
        dev.version = Some(choice);
    } else if request.version.is_some() {
        return Err(ProvisionError::Unavailable("a version needs a runtime".into()));
    }
    if request.enable_code_server {
        let code_server = catalog.latest(Kind::Addon, "code-server").ok_or_else(|| {
            ProvisionError::Unavailable(
                "code-server is not in the artifact store; ask the operator to add it".into(),
            )
        })?;
        dev.code_server = true;
        dev.code_server_version = Some(code_server.to_owned());
    }
    let version = dev.version.clone();
    Ok((dev, version))
}

async fn provision(control: &ControlPlane, id: i64, spec: &AgentSpec) -> Result<(), ProvisionError> {
    let driver = Arc::clone(&control.drivers.default);
    let endpoint = driver.create(id, spec).await.map_err(ProvisionError::Driver)?;
    control.store.set_agent(id, &endpoint).await?;
    let agent: Arc<dyn Agent> = Arc::new(control.remote_agent(&endpoint.url, &endpoint.secret));
    control.registry.insert(id, Arc::clone(&agent));
    wait_until_ready(control, id, agent.as_ref(), spec.game.autostart).await?;
    control.store.set_lifecycle(id, Lifecycle::Ready).await?;
    control.poller.track(id, driver);
    control.poller.poll_now(id).await;
    tracing::info!(server_id = id, "server ready");
    Ok(())
}

/// Waits for semantic readiness (for a server that is not to start: until its agent answers,
/// stopped); fails at once if the agent gave up (`error`). What the agent says meanwhile (what
/// it is installing) goes to the status cache, so that `GET /api/servers` shows a server
/// being created with its progress.
async fn wait_until_ready(
    control: &ControlPlane,
    id: i64,
    agent: &dyn Agent,
    starts: bool,
) -> Result<(), ProvisionError> {
    let timeout = control.config.provisioning.timeout;
    let deadline = Instant::now() + timeout;
    let mut last_reason = "its agent did not answer".to_owned();
    loop {
        if let Ok((readiness, status)) =
            crate::poller::poll_agent(agent, &mut crate::registry::Kept::default()).await
        {
            if readiness.ready || (!starts && status.state == GameState::Stopped) {
                return Ok(());
            }
            last_reason = readiness.reason.clone();
            let gave_up = (status.state == GameState::Error).then(|| {
                status.last_error.clone().or_else(|| {
                    status.last_crash.as_ref().map(|c| format!("{} ({:?})", c.reason, c.classification))
                })
            });
            control.cache.record_success(id, readiness, status).await;
            if let Some(why) = gave_up {
                return Err(ProvisionError::FailedToStart(why.unwrap_or(last_reason)));
            }
        }
        if Instant::now() >= deadline {
            return Err(ProvisionError::Timeout {
                within: humantime::format_duration(timeout).to_string(),
                last: last_reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes every trace of a server: polling, registry, driver resources, row.
async fn remove(control: &ControlPlane, id: i64) {
    control.poller.untrack(id).await;
    control.registry.remove(id);
    if let Err(e) = control.driver_of(id).await.destroy(id, Teardown::Immediate).await {
        tracing::error!(server_id = id, error = %e, "driver could not destroy the server");
    }
    if let Err(e) = control.store.delete_server(id).await {
        tracing::error!(server_id = id, error = %e, "cannot delete the server row");
    }
}

/// Changes what a server may use, within what the operator allows: at once where the engine
/// allows, and for every later start.
pub(crate) async fn change_limits(
    control: &ControlPlane,
    server: &Server,
    request: &LimitsRequest,
) -> Result<ResourceLimits, ProvisionError> {
    let driver = control.drivers.by_name(&server.driver);
    let Some(current) = server.limits.filter(|_| driver.enforces_limits()) else {
        return Err(ProvisionError::Limits(
            "this server's driver does not enforce limits (the local driver is for trying ZeroLagHub)".into(),
        ));
    };
    if request.disk_mb.is_some_and(|mb| mb != current.disk_mb) {
        return Err(ProvisionError::Limits("diskMb is set when the server is created".into()));
    }
    let limits = control.allowed_limits(current.with(request))?;
    driver.set_limits(server.id, &limits).await.map_err(ProvisionError::Driver)?;
    control.store.set_limits(server.id, &limits).await?;
    tracing::info!(server_id = server.id, ?limits, "limits changed");
    Ok(limits)
}

/// Stops a server gracefully and removes it.
pub(crate) async fn delete(control: &Arc<ControlPlane>, id: i64) -> Result<(), ProvisionError> {
    // This replica finishes it; another takes it over only if this one dies.
    control.store.claim_server(id, control.cluster.id(), &[]).await?;
    control.store.set_lifecycle(id, Lifecycle::Deleting).await?;
    tracing::info!(server_id = id, "deleting");
    let task = tokio::spawn(finish_delete(Arc::clone(control), id));
    task.await.map_err(|_| ProvisionError::Aborted)?
}

/// The second half of a delete: also run at start-up for deletes a previous control plane
/// did not finish.
async fn finish_delete(control: Arc<ControlPlane>, id: i64) -> Result<(), ProvisionError> {
    control.poller.untrack(id).await;
    control.registry.remove(id);
    let outcome = match control.driver_of(id).await.destroy(id, Teardown::Graceful).await {
        Ok(()) => control.store.delete_server(id).await.map_err(ProvisionError::from),
        Err(e) => Err(ProvisionError::Incomplete(e)),
    };
    if let Err(e) = &outcome {
        tracing::error!(server_id = id, error = %e, "deleting failed; it is retried at the next start");
    }
    outcome
}

/// At start-up: adopts every ready server (reviving agents that are gone), and finishes what a
/// replica that is gone left half done (provisioning is undone, deleting is completed).
pub(crate) async fn adopt_all(control: &Arc<ControlPlane>) -> Result<(), StoreError> {
    let servers = control.store.servers(None).await?;
    for server in servers.iter().filter(|s| s.lifecycle == Lifecycle::Ready) {
        let id = server.id;
        let driver = track(control, server);
        tokio::spawn(async move {
            match driver.revive(id).await {
                Ok(true) => tracing::info!(server_id = id, "agent was not running; started it"),
                Ok(false) => tracing::info!(server_id = id, "adopted the running agent"),
                Err(e) => tracing::error!(server_id = id, error = %e, "cannot adopt the agent"),
            }
        });
    }
    take_orphans(control, &servers, &control.cluster.live()).await;
    Ok(())
}

/// Registers a ready server's agent and polls it (while this replica owns it); its driver.
fn track(control: &ControlPlane, server: &Server) -> Arc<dyn crate::drivers::Driver> {
    let driver = control.drivers.by_name(&server.driver);
    control
        .registry
        .insert(server.id, Arc::new(control.remote_agent(&server.agent_url, &server.agent_secret)));
    control.poller.track(server.id, Arc::clone(&driver));
    driver
}

/// At each beat while other replicas are alive (and once after the last one left): follows the
/// servers they created and deleted, and takes over the creations and deletions of replicas
/// that are gone.
pub(crate) async fn follow_others(control: &Arc<ControlPlane>, live: &[String]) -> Result<(), StoreError> {
    // The registry is read before the store, so a server created here meanwhile is in both.
    let known = control.registry.ids();
    let servers = control.store.servers(None).await?;
    let ready: std::collections::HashSet<i64> =
        servers.iter().filter(|s| s.lifecycle == Lifecycle::Ready).map(|s| s.id).collect();
    for server in servers.iter().filter(|s| ready.contains(&s.id) && control.registry.get(s.id).is_none()) {
        track(control, server);
    }
    let creating: std::collections::HashSet<i64> =
        servers.iter().filter(|s| s.lifecycle == Lifecycle::Provisioning).map(|s| s.id).collect();
    for id in known.into_iter().filter(|id| !ready.contains(id) && !creating.contains(id)) {
        control.poller.untrack(id).await;
        control.registry.remove(id);
    }
    take_orphans(control, &servers, live).await;
    Ok(())
}

/// Creations and deletions whose replica is not in `live` (it died): undone and finished here,
/// each by the one replica that claims it.
async fn take_orphans(control: &Arc<ControlPlane>, servers: &[Server], live: &[String]) {
    for server in servers.iter().filter(|s| s.lifecycle != Lifecycle::Ready) {
        let id = server.id;
        match control.store.claim_server(id, control.cluster.id(), live).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(server_id = id, error = %e, "cannot claim an unfinished server; trying again later");
                continue;
            }
        }
        if server.lifecycle == Lifecycle::Provisioning {
            tracing::warn!(server_id = id, "undoing a creation a stopped control plane did not finish");
            remove(control, id).await;
        } else {
            tracing::warn!(server_id = id, "finishing a delete a stopped control plane did not finish");
            tokio::spawn(finish_delete(Arc::clone(control), id));
        }
    }
}

/// A server whose agent someone else runs (the `external` driver).
#[derive(Debug, Clone)]
pub struct ExternalServer {
    /// Owner.
    pub owner_id: i64,
    /// Name.
    pub name: String,
    /// Game or dev.
    pub kind: ServerKind,
    /// Where its agent answers, and the agent's secret; for dev servers, where its
    /// code-server listens.
    pub endpoint: AgentEndpoint,
}

/// Records a server whose agent someone else runs, to be adopted at the next start: for
/// operators' scripts and benchmarks.
pub async fn record_external(
    store: &dyn crate::db::Store,
    server: ExternalServer,
) -> Result<i64, StoreError> {
    let new = NewServer {
        owner_id: server.owner_id,
        name: server.name,
        kind: server.kind,
        template: None,
        runtime: None,
        runtime_version: None,
        enable_code_server: server.endpoint.ide.is_some(),
        driver: "external".into(),
        node_id: None,
        limits: None,
        replica: String::new(),
    };
    let row = store.insert_server(new, None, now_ms()).await?;
    store.set_agent(row.id, &server.endpoint).await?;
    store.set_lifecycle(row.id, Lifecycle::Ready).await?;
    Ok(row.id)
}

impl ControlPlane {
    /// `limits`, if they are within what the operator allows (and sane), or why not.
    fn allowed_limits(&self, limits: ResourceLimits) -> Result<ResourceLimits, ProvisionError> {
        let max = &self.config.docker.max_limits;
        let checks = [
            (
                limits.memory_mb >= 64 && limits.memory_mb <= max.memory_mb,
                format!("memoryMb must be 64 to {}", max.memory_mb),
            ),
            (limits.cpus >= 0.1 && limits.cpus <= max.cpus, format!("cpus must be 0.1 to {}", max.cpus)),
            (limits.pids >= 32 && limits.pids <= max.pids, format!("pids must be 32 to {}", max.pids)),
            (
                (10..=1000).contains(&limits.io_weight) && limits.io_weight <= max.io_weight,
                format!("ioWeight must be 10 to {}", max.io_weight.min(1000)),
            ),
            (
                // A ceiling of 0 lets servers go unlimited.
                max.disk_mb == 0 || (32..=max.disk_mb).contains(&limits.disk_mb),
                format!("diskMb must be 32 to {}", max.disk_mb),
            ),
        ];
        match checks.into_iter().find(|(ok, _)| !ok) {
            Some((_, why)) => Err(ProvisionError::Limits(format!("{why} on this host"))),
            None => Ok(limits),
        }
    }

    /// The artifact catalog agents install from: this control plane's own store, or the
    /// configured one.
    pub async fn catalog(&self) -> Result<zlh_proto::catalog::Catalog, ArtifactError> {
        let text = match &self.config.artifacts.catalog_url {
            None => return self.artifacts.catalog(),
            Some(url) => {
                let response = self.agent_http.get(url).send().await;
                let response = response
                    .map_err(|e| ArtifactError(format!("the artifact store cannot be reached: {e}")))?;
                let text = response.text().await;
                text.map_err(|e| ArtifactError(format!("the artifact catalog cannot be read: {e}")))?
            }
        };
        zlh_proto::catalog::Catalog::parse(&text).map_err(ArtifactError)
    }

    /// The driver a server was made with.
    async fn driver_of(&self, id: i64) -> Arc<dyn crate::drivers::Driver> {
        match self.store.server(id).await {
            Ok(Some(server)) => self.drivers.by_name(&server.driver),
            _ => Arc::clone(&self.drivers.default),
        }
    }

    /// A client for an agent, sharing the control plane's connection pool.
    pub(crate) fn remote_agent(&self, url: &zlh_proto::Secret, secret: &zlh_proto::Secret) -> RemoteAgent {
        RemoteAgent::new(url.clone(), secret.clone(), self.agent_http.clone(), self.config.poller.timeout)
    }
}
