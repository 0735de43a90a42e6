//! The `docker` driver: every server is a container of its own on a Docker (or Podman) engine,
//! reached only through the engine's API, so the engine may be on another machine.
//!
//! ```text
//! zlh-<node>-<id>            the container: PID 1 is `zlh init`, which keeps the agent running
//! zlh-<node>-<id>-agent      volume at /opt/zlh, read-only: the zlh binary and agent.toml
//! zlh-<node>-<id>-data       volume at /var/lib/zlh: the game, the agent's state, backups
//! <data>/docker/<id>.json    the container's spec (0600), to re-create it when it is missing
//! ```
//!
//! The data's disk quota is the kernel's: with an engine on this machine, the data is a
//! filesystem of its own bound in instead of the volume (`disks.rs`); with a remote engine, the
//! volume is made with the engine's `size` option (XFS project quotas on the engine's host).
//! An engine that can do neither gets a plain volume, and the agent measures (and says so).
//!
//! The agent's files reach the container through the engine (an archive uploaded into the
//! agent volume by a loader container that never starts), never through a shared filesystem.
//! Inside, everything runs as an unprivileged user with no capabilities, no new privileges, a
//! read-only root filesystem and a bounded `/tmp`; the only writable place is the data volume.
//! The agent's API (and a dev server's code-server) is published on the operator's agent
//! address (loopback by default) at a port the engine picks; the game's ports on the node's
//! public address. Containers sit on a network of their own with traffic between containers
//! off, so a server reaches neither another server nor its agent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerCreateBody, ContainerUpdateBody, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, LogsOptions, RemoveContainerOptions, RemoveVolumeOptions,
    StopContainerOptions, UploadToContainerOptions,
};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use zlh_proto::Secret;
use zlh_proto::agent_config::{DevSection, DiskEnforcement, DiskSection, GameSection};
use zlh_proto::api::{PortProtocol, ResourceLimits};

use super::disks::LoopDisks;
use super::{AgentSpec, Driver, DriverError, InstallLog, InstallRun, Teardown};
use crate::config::DockerConfig;
use crate::registry::{Agent, AgentEndpoint, RemoteAgent};

/// Where an installer sees the server's data volume; `/mnt/server` leads to its `server`.
const INSTALL_DATA: &str = "/mnt/zlh-data";
/// Runs `$1 script` (the script is `$2`) with `/mnt/server` the game's directory, then gives
/// what it made to the server's user (`$3`), symlinks as themselves, never what they point at.
const INSTALL_WRAPPER: &str = "mkdir -p /mnt/zlh-data/server && rm -rf /mnt/server && \
    ln -s /mnt/zlh-data/server /mnt/server && printf '%s' \"$2\" > /tmp/zlh-install.sh || exit 125
cd /mnt/server && \"$1\" /tmp/zlh-install.sh
code=$?
chown -R -h \"$3\" /mnt/zlh-data/server
exit $code";

/// The agent's port inside every container.
const AGENT_PORT: u16 = 7420;
/// code-server's port inside a dev container.
const CODE_SERVER_PORT: u16 = 6000;
/// Where the agent volume is mounted.
const AGENT_DIR: &str = "/opt/zlh";
/// Where the data volume is mounted: everything the server may write.
const DATA_DIR: &str = "/var/lib/zlh";
/// How long a new or revived agent may take to answer.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Servers as containers.
#[derive(Debug)]
pub struct DockerDriver {
    engine: Docker,
    config: DockerConfig,
    node: String,
    public_address: String,
    specs_dir: PathBuf,
    zlh_exe: PathBuf,
    agent_defaults: toml::Table,
    http: reqwest::Client,
    /// Creations that find the network missing make it one at a time (the engine accepts two
    /// networks of one name).
    network_made: tokio::sync::Mutex<()>,
    /// Servers' filesystems, when the engine is on this machine and this process may mount.
    loop_disks: Option<LoopDisks>,
    /// Whether the engine is on this machine (a unix socket).
    on_this_machine: bool,
    /// Creations pick agent ports and record them in their spec one at a time.
    ports_picked: std::sync::Mutex<()>,
}

/// The agent's configuration inside a container: the same file the local driver writes, with
/// every path in the data volume.
#[derive(Serialize)]
struct AgentFile<'a> {
    listen: String,
    secret: &'a str,
    root: &'static str,
    state_dir: String,
    catalog_url: &'a str,
    game: GameSection,
    #[serde(skip_serializing_if = "Option::is_none")]
    dev: Option<DevSection>,
    backups: toml::Table,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<DiskSection>,
    container: bool,
    #[serde(flatten)]
    defaults: &'a toml::Table,
}

/// What the driver keeps to re-create a server's container.
#[derive(Serialize, Deserialize)]
struct Stored {
    container: Value,
    secret: String,
    dev: bool,
    /// How the data is held: a filesystem of its own (`disks.rs`), or a volume of this size
    /// option (none: unlimited).
    #[serde(default)]
    data: DataPlace,
}

/// Where a server's data lives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DataPlace {
    /// A volume without a quota.
    #[default]
    Volume,
    /// A volume the engine limits to `size` (its `size` option).
    SizedVolume { size: String },
    /// A filesystem image of this machine's, bound in.
    OwnFilesystem,
}

impl DockerDriver {
    /// A driver for the engine at `config.endpoint`; `specs_dir` keeps each container's spec.
    pub fn new(
        config: DockerConfig,
        node: &crate::config::NodeConfig,
        specs_dir: PathBuf,
        zlh_exe: PathBuf,
        agent_defaults: toml::Table,
    ) -> Result<DockerDriver, DriverError> {
        let endpoint = config.endpoint.as_str();
        let on_this_machine = endpoint.starts_with("unix://") || endpoint.starts_with('/');
        let loop_disks = on_this_machine.then(|| LoopDisks::here(specs_dir.join("disks"))).flatten();
        let version = bollard::API_DEFAULT_VERSION;
        let engine = match &config.tls {
            _ if on_this_machine => Docker::connect_with_unix(endpoint, 120, version),
            Some(tls) => Docker::connect_with_ssl(endpoint, &tls.key, &tls.cert, &tls.ca, 120, version),
            None => {
                tracing::warn!(
                    "the container engine is reached without TLS: anyone on that network can drive it"
                );
                Docker::connect_with_http(endpoint, 120, version)
            }
        }
        .map_err(|e| DriverError(format!("the container engine at {endpoint} cannot be used: {e}")))?;
        Ok(DockerDriver {
            engine,
            config,
            node: node.name.clone(),
            public_address: node.public_address.clone(),
            specs_dir,
            zlh_exe,
            agent_defaults,
            http: RemoteAgent::client(),
            network_made: tokio::sync::Mutex::new(()),
            loop_disks,
            on_this_machine,
            ports_picked: std::sync::Mutex::new(()),
        })
    }

    fn name(&self, server_id: i64) -> String {
        format!("zlh-{}-{server_id}", self.node)
    }

    /// One of a server's volumes: `agent` or `data`.
    fn volume(&self, server_id: i64, kind: &str) -> String {
        format!("{}-{kind}", self.name(server_id))
    }

    fn spec_path(&self, server_id: i64) -> PathBuf {
        self.specs_dir.join(format!("{server_id}.json"))
    }

    /// The engine, with the API version it speaks (an older engine is spoken to in its own).
    async fn engine(&self) -> Result<Docker, DriverError> {
        self.engine.clone().negotiate_version().await.map_err(|e| engine_error("reach", e))
    }

    /// The server network (traffic between containers off), created when missing.
    async fn ensure_network(&self, engine: &Docker) -> Result<(), DriverError> {
        let _one_at_a_time = self.network_made.lock().await;
        if engine.inspect_network(&self.config.network, None).await.is_ok() {
            return Ok(());
        }
        let request = NetworkCreateRequest {
            name: self.config.network.clone(),
            driver: Some("bridge".into()),
            options: Some(HashMap::from([(
                "com.docker.network.bridge.enable_icc".to_owned(),
                "false".to_owned(),
            )])),
            ..Default::default()
        };
        match engine.create_network(request).await {
            Ok(_) => Ok(()),
            // Created meanwhile by another creation.
            Err(EngineError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(engine_error("create the server network", e)),
        }
    }

    /// A free port on the agent address, for a container's agent or code-server, fixed at
    /// creation so that it stays the same when the container restarts. On this machine the
    /// kernel names a free one; a remote engine's host cannot be asked, so it is one of
    /// `agent_ports` that no server's spec holds (`taken`, to which it is added).
    fn free_agent_port(&self, taken: &mut std::collections::HashSet<u16>) -> Result<u16, DriverError> {
        let none_free = || DriverError("no free port for the agent".into());
        let port = if self.on_this_machine {
            let listener = std::net::TcpListener::bind((self.config.agent_address.as_str(), 0))
                .map_err(|_| none_free())?;
            listener.local_addr().map_err(|_| none_free())?.port()
        } else {
            let [first, last] = self.config.agent_ports;
            (first..=last).find(|port| !taken.contains(port)).ok_or_else(none_free)?
        };
        taken.insert(port);
        Ok(port)
    }

    /// The agent-address ports in every server's spec.
    fn agent_ports_taken(&self) -> std::collections::HashSet<u16> {
        let specs = std::fs::read_dir(&self.specs_dir).into_iter().flatten().flatten();
        let stored = specs.filter_map(|entry| {
            let bytes = std::fs::read(entry.path()).ok()?;
            serde_json::from_slice::<Stored>(&bytes).ok()
        });
        let mut taken = std::collections::HashSet::new();
        for stored in stored {
            let bindings =
                stored.container["HostConfig"]["PortBindings"].as_object().cloned().unwrap_or_default();
            for binding in bindings.values().filter_map(Value::as_array).flatten() {
                if binding["HostIp"] == self.config.agent_address.as_str()
                    && let Some(port) = binding["HostPort"].as_str().and_then(|p| p.parse().ok())
                {
                    taken.insert(port);
                }
            }
        }
        taken
    }

    /// The container's create body, as the Engine API spells it.
    fn container(&self, server_id: i64, spec: &AgentSpec, data: &DataPlace) -> Result<Value, DriverError> {
        let limits = &spec.limits;
        let mut exposed = serde_json::Map::new();
        let mut bindings = serde_json::Map::new();
        let mut private = vec![AGENT_PORT];
        if spec.dev.is_some() {
            private.push(CODE_SERVER_PORT);
        }
        let mut taken = if self.on_this_machine { Default::default() } else { self.agent_ports_taken() };
        for port in private {
            let host_port = self.free_agent_port(&mut taken)?.to_string();
            let binding = json!([{ "HostIp": self.config.agent_address, "HostPort": host_port }]);
            exposed.insert(format!("{port}/tcp"), json!({}));
            bindings.insert(format!("{port}/tcp"), binding);
        }
        for port in &spec.ports {
            let transports: &[&str] = match port.protocol {
                PortProtocol::Tcp => &["tcp"],
                PortProtocol::Udp => &["udp"],
                PortProtocol::Both => &["tcp", "udp"],
            };
            for transport in transports {
                let key = format!("{}/{transport}", port.port);
                exposed.insert(key.clone(), json!({}));
                bindings.insert(
                    key,
                    json!([{ "HostIp": self.public_address, "HostPort": port.port.to_string() }]),
                );
            }
        }
        let zlh = format!("{AGENT_DIR}/zlh");
        let memory = container_memory(limits.memory_mb);
        let agent_volume = self.volume(server_id, "agent");
        let data_mount = match (data, &self.loop_disks) {
            (DataPlace::OwnFilesystem, Some(disks)) => {
                json!({ "Type": "bind", "Source": disks.mount_point(server_id), "Target": DATA_DIR })
            }
            (DataPlace::OwnFilesystem, None) => {
                return Err(DriverError("this node cannot mount the server's own filesystem".into()));
            }
            _ => json!({ "Type": "volume", "Source": self.volume(server_id, "data"), "Target": DATA_DIR }),
        };
        Ok(json!({
            "Image": spec.image.as_deref().unwrap_or(&self.config.image),
            "Cmd": [zlh, "init", "--", zlh, "agent", "--config", format!("{AGENT_DIR}/agent.toml")],
            "User": self.config.user,
            "Env": [format!("HOME={DATA_DIR}"), "ZLH_LOG=info"],
            "WorkingDir": DATA_DIR,
            "Labels": { "zlh.server": server_id.to_string(), "zlh.node": self.node },
            "ExposedPorts": exposed,
            "StopTimeout": 90,
            "HostConfig": {
                "Mounts": [
                    { "Type": "volume", "Source": agent_volume, "Target": AGENT_DIR, "ReadOnly": true },
                    data_mount,
                ],
                "Tmpfs": { "/tmp": format!("rw,nosuid,nodev,size={}m", self.config.tmp_mb) },
                "ReadonlyRootfs": true,
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges"],
                "Memory": memory,
                "MemorySwap": memory,
                "NanoCpus": (limits.cpus * 1e9) as i64,
                "PidsLimit": limits.pids,
                "BlkioWeight": limits.io_weight,
                "PortBindings": bindings,
                "NetworkMode": self.config.network,
                "RestartPolicy": { "Name": "unless-stopped" },
            },
        }))
    }

    /// Creates the container (and its volumes, if missing) from a stored spec; fills a fresh
    /// agent volume with the zlh binary and the agent's configuration.
    async fn create_container(
        &self,
        engine: &Docker,
        server_id: i64,
        stored: &Stored,
        agent_toml: Option<&str>,
    ) -> Result<(), DriverError> {
        let name = self.name(server_id);
        self.create_volume(engine, server_id, "agent", None).await?;
        match &stored.data {
            DataPlace::Volume => self.create_volume(engine, server_id, "data", None).await?,
            DataPlace::SizedVolume { size } => {
                self.create_volume(engine, server_id, "data", Some(size)).await?
            }
            DataPlace::OwnFilesystem => {}
        }
        if let Some(agent_toml) = agent_toml {
            self.load_volumes(engine, server_id, &stored.container, agent_toml).await?;
        }
        let body: ContainerCreateBody = serde_json::from_value(stored.container.clone())
            .map_err(|_| DriverError("the server's container spec is damaged".into()))?;
        let options = CreateContainerOptions { name: Some(name), ..Default::default() };
        engine
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error("create the container", e))?;
        Ok(())
    }

    /// One of a server's volumes (kept as it is when it exists), of `size` when given.
    async fn create_volume(
        &self,
        engine: &Docker,
        server_id: i64,
        kind: &str,
        size: Option<&str>,
    ) -> Result<(), DriverError> {
        let request = VolumeCreateRequest {
            name: Some(self.volume(server_id, kind)),
            labels: Some(HashMap::from([
                ("zlh.server".to_owned(), server_id.to_string()),
                ("zlh.node".to_owned(), self.node.clone()),
            ])),
            driver_opts: size.map(|size| HashMap::from([("size".to_owned(), size.to_owned())])),
            ..Default::default()
        };
        engine.create_volume(request).await.map_err(|e| engine_error("create the server's volumes", e))?;
        Ok(())
    }

    /// Makes the server's data place with a quota of `disk_mb` MiB, enforced by the kernel where
    /// this node or the engine can; `(place, what the agent is told)`.
    async fn make_data(
        &self,
        engine: &Docker,
        server_id: i64,
        disk_mb: u32,
    ) -> Result<(DataPlace, Option<DiskSection>), DriverError> {
        let section = |enforced_by, own_filesystem| DiskSection {
            limit_bytes: u64::from(disk_mb) << 20,
            enforced_by,
            own_filesystem,
        };
        if disk_mb == 0 {
            return Ok((DataPlace::Volume, None));
        }
        if let Some(disks) = &self.loop_disks {
            let (disks, ids) = (disks.clone(), self.ids());
            tokio::task::spawn_blocking(move || disks.create(server_id, disk_mb, ids))
                .await
                .map_err(|_| DriverError("the server's disk could not be made".into()))??;
            return Ok((DataPlace::OwnFilesystem, Some(section(DiskEnforcement::Kernel, true))));
        }
        let size = format!("{disk_mb}m");
        match self.create_volume(engine, server_id, "data", Some(&size)).await {
            Ok(()) => Ok((DataPlace::SizedVolume { size }, Some(section(DiskEnforcement::Kernel, false)))),
            Err(DriverError(message)) if message.contains("quota") => {
                tracing::warn!(
                    server_id,
                    "the engine cannot limit volumes (no project quotas); the agent measures this server's disk"
                );
                Ok((DataPlace::Volume, Some(section(DiskEnforcement::Measured, false))))
            }
            Err(e) => Err(e),
        }
    }

    /// Uploads the agent's files into its volume and prepares the data volume for the
    /// unprivileged user, through a loader container that is never started.
    async fn load_volumes(
        &self,
        engine: &Docker,
        server_id: i64,
        container: &Value,
        agent_toml: &str,
    ) -> Result<(), DriverError> {
        let loader = format!("{}-loader", self.name(server_id));
        let _ = engine
            .remove_container(&loader, Some(RemoveContainerOptions { force: true, ..Default::default() }))
            .await;
        let body: ContainerCreateBody = serde_json::from_value(json!({
            "Image": container["Image"],
            "Cmd": ["/bin/true"],
            "Labels": { "zlh.server": server_id.to_string(), "zlh.node": self.node },
            "HostConfig": { "Mounts": writable(&container["HostConfig"]["Mounts"]) },
        }))
        .map_err(|_| DriverError("the loader's spec is damaged".into()))?;
        let options = CreateContainerOptions { name: Some(loader.clone()), ..Default::default() };
        engine
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error("create the container", e))?;
        let uploaded = async {
            let (uid, gid) = self.ids();
            let agent = agent_archive(&self.zlh_exe, agent_toml, uid, gid)
                .map_err(|e| DriverError(format!("the agent's files could not be packed: {e}")))?;
            let data = data_archive(uid, gid)
                .map_err(|e| DriverError(format!("the data volume could not be prepared: {e}")))?;
            for (path, archive) in [(AGENT_DIR, agent), (DATA_DIR, data)] {
                let options = UploadToContainerOptions { path: path.into(), ..Default::default() };
                engine
                    .upload_to_container(&loader, Some(options), bollard::body_full(archive.into()))
                    .await
                    .map_err(|e| engine_error("copy the agent into the container", e))?;
            }
            Ok(())
        }
        .await;
        let _ = engine
            .remove_container(&loader, Some(RemoveContainerOptions { force: true, ..Default::default() }))
            .await;
        uploaded
    }

    /// The numeric user and group everything in the container runs as.
    fn ids(&self) -> (u64, u64) {
        let (uid, gid) = self.config.user.split_once(':').unwrap_or((&self.config.user, &self.config.user));
        (uid.parse().unwrap_or(1000), gid.parse().unwrap_or(1000))
    }

    /// Where the engine published the agent (and code-server) of a running container.
    async fn endpoint(
        &self,
        engine: &Docker,
        server_id: i64,
        stored: &Stored,
    ) -> Result<AgentEndpoint, DriverError> {
        let inspected = engine
            .inspect_container(&self.name(server_id), None)
            .await
            .map_err(|e| engine_error("inspect the container", e))?;
        let ports = inspected.network_settings.and_then(|n| n.ports).unwrap_or_default();
        let published = |port: u16| {
            let bindings = ports.get(&format!("{port}/tcp"))?.as_ref()?;
            let port = bindings.iter().find_map(|b| b.host_port.clone())?;
            Some(format!("{}:{port}", self.config.agent_address))
        };
        let agent = published(AGENT_PORT)
            .ok_or_else(|| DriverError("the container's agent port is not published".into()))?;
        Ok(AgentEndpoint {
            url: Secret::new(format!("http://{agent}")),
            secret: Secret::new(stored.secret.as_str()),
            ide: if stored.dev { published(CODE_SERVER_PORT).map(Secret::new) } else { None },
        })
    }

    /// Starts the container if it is not running; whether it had to.
    async fn ensure_running(&self, engine: &Docker, server_id: i64) -> Result<bool, DriverError> {
        let name = self.name(server_id);
        let inspected = engine
            .inspect_container(&name, None)
            .await
            .map_err(|e| engine_error("inspect the container", e))?;
        let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
        if !running {
            engine.start_container(&name, None).await.map_err(|e| engine_error("start the container", e))?;
        }
        Ok(!running)
    }

    async fn wait_until_answering(&self, endpoint: &AgentEndpoint) -> Result<(), DriverError> {
        let agent = RemoteAgent::probe(endpoint, &self.http);
        let agent: &dyn Agent = &agent;
        let deadline = Instant::now() + AGENT_START_TIMEOUT;
        while agent.health().await.is_err() {
            if Instant::now() > deadline {
                return Err(DriverError("the server's agent did not answer in time".into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Writes a server's container spec (0600).
    fn save_stored(&self, server_id: i64, stored: &Stored) -> Result<(), DriverError> {
        let unwritten = || DriverError("the container spec could not be written".into());
        let bytes = serde_json::to_vec(stored).map_err(|_| unwritten())?;
        write_private(&self.spec_path(server_id), &bytes).map_err(|e| {
            tracing::error!(server_id, error = %e, "cannot write the container spec");
            unwritten()
        })
    }

    fn load_stored(&self, server_id: i64) -> Result<Stored, DriverError> {
        let text = std::fs::read(self.spec_path(server_id))
            .map_err(|_| DriverError("the server's container spec is missing".into()))?;
        serde_json::from_slice(&text)
            .map_err(|_| DriverError("the server's container spec is damaged".into()))
    }

    async fn remove_everything(&self, engine: &Docker, server_id: i64) -> Result<(), DriverError> {
        let name = self.name(server_id);
        let force = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        for container in [format!("{name}-loader"), format!("{name}-install"), name.clone()] {
            match engine.remove_container(&container, Some(force.clone())).await {
                Ok(()) | Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(engine_error("remove the container", e)),
            }
        }
        for volume in ["agent", "data"] {
            match engine
                .remove_volume(&self.volume(server_id, volume), Some(RemoveVolumeOptions { force: true }))
                .await
            {
                Ok(()) | Err(EngineError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => return Err(engine_error("remove the server's volumes", e)),
            }
        }
        if let Some(disks) = &self.loop_disks {
            let disks = disks.clone();
            tokio::task::spawn_blocking(move || disks.remove(server_id))
                .await
                .map_err(|_| DriverError("the server's disk could not be removed".into()))??;
        }
        match std::fs::remove_file(self.spec_path(server_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::error!(server_id, error = %e, "cannot remove the container spec");
                Err(DriverError("the server's container spec could not be removed".into()))
            }
            _ => Ok(()),
        }
    }
}

/// The container's memory, in bytes, for a server allowed `mb` MiB: a JVM needs memory above
/// its heap, so the container gets Wings' overhead on top (15 % up to 2 GiB, 10 % up to 4 GiB,
/// 5 % above), and the game is told the limit itself (`SERVER_MEMORY`, MiB) to size its heap.
fn container_memory(mb: u32) -> i64 {
    let overhead = match mb {
        0..=2048 => 15,
        2049..=4096 => 10,
        _ => 5,
    };
    i64::from(mb) * (100 + overhead) / 100 * 1024 * 1024
}

/// An engine failure, said plainly (the engine's message names no secret of ours).
fn engine_error(what: &str, error: EngineError) -> DriverError {
    match error {
        EngineError::DockerResponseServerError { status_code: 404, message } if message.contains("image") => {
            DriverError(format!("the server's image is not on this node: {message}"))
        }
        EngineError::DockerResponseServerError { status_code: 409, message } => {
            DriverError(format!("cannot {what}: a container by that name exists ({message})"))
        }
        EngineError::DockerResponseServerError { message, .. } => {
            DriverError(format!("cannot {what}: {message}"))
        }
        other => DriverError(format!("cannot {what}: the container engine cannot be reached ({other})")),
    }
}

/// The container's mounts, each writable: the loader fills what the server only reads.
fn writable(mounts: &Value) -> Value {
    let mut mounts = mounts.clone();
    for mount in mounts.as_array_mut().into_iter().flatten() {
        if let Some(mount) = mount.as_object_mut() {
            mount.remove("ReadOnly");
        }
    }
    mounts
}

/// A tar of the agent volume: the zlh binary and agent.toml (0600), owned by the server's user.
fn agent_archive(zlh: &Path, agent_toml: &str, uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    let binary = std::fs::read(zlh)?;
    for (name, bytes, mode) in
        [("zlh", binary.as_slice(), 0o755), ("agent.toml", agent_toml.as_bytes(), 0o600)]
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes)?;
    }
    archive.into_inner()
}

/// A tar that gives the data volume, and the directories the agent uses in it, to the
/// server's user.
fn data_archive(uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for name in ["./", "agent/", "server/", "backups/", "home/"] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_size(0);
        header.set_mode(0o750);
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_cksum();
        archive.append_data(&mut header, name, std::io::empty())?;
    }
    archive.into_inner()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[async_trait]
impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn create(&self, server_id: i64, spec: &AgentSpec) -> Result<AgentEndpoint, DriverError> {
        let engine = self.engine().await?;
        self.ensure_network(&engine).await?;
        let secret = crate::auth::random_token(24);
        let mut dev = spec.dev.clone();
        if let Some(dev) = &mut dev {
            dev.code_server_port = CODE_SERVER_PORT;
            // Inside the container's own network namespace; published only on the agent address.
            dev.code_server_host = "0.0.0.0".into();
            dev.workspace = PathBuf::from(format!("{DATA_DIR}/home/workspace"));
            // `/opt/zlh` is the read-only agent volume.
            dev.packages_dir = PathBuf::from(format!("{DATA_DIR}/packages"));
        }
        let (data, disk) = self.make_data(&engine, server_id, spec.limits.disk_mb).await?;
        let mut backups = toml::Table::new();
        backups.insert("dir".into(), format!("{DATA_DIR}/backups").into());
        let catalog_url = self.config.catalog_url.as_deref().unwrap_or(&spec.catalog_url);
        let file = AgentFile {
            listen: format!("0.0.0.0:{AGENT_PORT}"),
            secret: &secret,
            root: "/",
            state_dir: format!("{DATA_DIR}/agent"),
            catalog_url,
            game: {
                let mut game = spec.game_with_zlh(&format!("{AGENT_DIR}/zlh"));
                game.working_dir = PathBuf::from(format!("{DATA_DIR}/server"));
                game.env.insert("SERVER_MEMORY".into(), spec.limits.memory_mb.to_string());
                game
            },
            dev,
            backups,
            disk,
            container: true,
            defaults: &self.agent_defaults,
        };
        let agent_toml = toml::to_string(&file)
            .map_err(|_| DriverError("the agent configuration could not be written".into()))?;
        let stored = {
            // The ports it picks are in its spec before another creation looks.
            let _one_at_a_time = self.ports_picked.lock().unwrap_or_else(|p| p.into_inner());
            let container = self.container(server_id, spec, &data)?;
            let stored = Stored { container, secret, dev: spec.dev.is_some(), data };
            self.save_stored(server_id, &stored)?;
            stored
        };
        self.create_container(&engine, server_id, &stored, Some(&agent_toml)).await?;
        self.ensure_running(&engine, server_id).await?;
        let endpoint = self.endpoint(&engine, server_id, &stored).await?;
        self.wait_until_answering(&endpoint).await?;
        Ok(endpoint)
    }

    async fn revive(&self, server_id: i64) -> Result<bool, DriverError> {
        let engine = self.engine().await?;
        let stored = self.load_stored(server_id)?;
        let missing = matches!(
            engine.inspect_container(&self.name(server_id), None).await,
            Err(EngineError::DockerResponseServerError { status_code: 404, .. })
        );
        if missing {
            // Gone (pruned, or an engine that lost it): made again from its spec, with its
            // volumes as they are.
            tracing::warn!(server_id, "the server's container is missing; creating it again");
            self.ensure_network(&engine).await?;
            self.create_container(&engine, server_id, &stored, None).await?;
        }
        if let (DataPlace::OwnFilesystem, Some(disks)) = (&stored.data, &self.loop_disks)
            && disks.ensure_mounted(server_id)?
            && !missing
        {
            // Started before its filesystem was there (the host rebooted): it saw the closed
            // mount point, not its data.
            tracing::warn!(server_id, "the server's filesystem was not mounted; restarting its container");
            engine
                .restart_container(&self.name(server_id), None)
                .await
                .map_err(|e| engine_error("restart the container", e))?;
        }
        let started = self.ensure_running(&engine, server_id).await?;
        if started || missing {
            let endpoint = self.endpoint(&engine, server_id, &stored).await?;
            self.wait_until_answering(&endpoint).await?;
        }
        Ok(started || missing)
    }

    fn enforces_limits(&self) -> bool {
        true
    }

    async fn host_memory_mb(&self) -> Option<u32> {
        let info = self.engine().await.ok()?.info().await.ok()?;
        u32::try_from(info.mem_total? >> 20).ok()
    }

    async fn set_limits(&self, server_id: i64, limits: &ResourceLimits) -> Result<(), DriverError> {
        let engine = self.engine().await?;
        let mut stored = self.load_stored(server_id)?;
        let memory = container_memory(limits.memory_mb);
        let host = &mut stored.container["HostConfig"];
        host["Memory"] = json!(memory);
        host["MemorySwap"] = json!(memory);
        host["NanoCpus"] = json!((limits.cpus * 1e9) as i64);
        host["PidsLimit"] = json!(limits.pids);
        host["BlkioWeight"] = json!(limits.io_weight);
        let update = ContainerUpdateBody {
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some((limits.cpus * 1e9) as i64),
            pids_limit: Some(i64::from(limits.pids)),
            blkio_weight: Some(limits.io_weight),
            ..Default::default()
        };
        engine
            .update_container(&self.name(server_id), update)
            .await
            .map_err(|e| engine_error("change the limits", e))?;
        self.save_stored(server_id, &stored)
    }

    async fn install(&self, server_id: i64, run: &InstallRun, log: InstallLog) -> Result<i64, DriverError> {
        let engine = self.engine().await?;
        let stored = self.load_stored(server_id)?;
        let name = format!("{}-install", self.name(server_id));
        let force = RemoveContainerOptions { force: true, ..Default::default() };
        let _ = engine.remove_container(&name, Some(force.clone())).await;
        let mut mounts = writable(&stored.container["HostConfig"]["Mounts"]);
        // Only the data, where the installer expects it: the agent's volume stays out of reach.
        if let Some(list) = mounts.as_array_mut() {
            list.retain(|m| m["Target"] == DATA_DIR);
            list.iter_mut().for_each(|m| m["Target"] = json!(INSTALL_DATA));
        }
        let (uid, gid) = self.ids();
        let host = &stored.container["HostConfig"];
        let body: ContainerCreateBody = serde_json::from_value(json!({
            "Image": run.image,
            // Eggs' scripts run as root and write to /mnt/server; what they leave is then
            // given to the server's user.
            "Cmd": ["/bin/sh", "-c", INSTALL_WRAPPER, "zlh-install", run.entrypoint, run.script,
                format!("{uid}:{gid}")],
            "User": "0:0",
            "Env": run.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "Labels": { "zlh.server": server_id.to_string(), "zlh.node": self.node },
            "HostConfig": {
                "Mounts": mounts,
                "CapDrop": ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SYS_CHROOT", "SETFCAP"],
                "SecurityOpt": ["no-new-privileges"],
                "Memory": host["Memory"],
                "MemorySwap": host["MemorySwap"],
                "NanoCpus": host["NanoCpus"],
                "PidsLimit": host["PidsLimit"],
                "NetworkMode": self.config.network,
            },
        }))
        .map_err(|_| DriverError("the installer's spec is damaged".into()))?;
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        let ran = async {
            engine
                .create_container(Some(options), body)
                .await
                .map_err(|e| engine_error("create the installer", e))?;
            engine.start_container(&name, None).await.map_err(|e| engine_error("start the installer", e))?;
            let follow = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
            let mut output = engine.logs(&name, Some(follow));
            let followed = tokio::time::timeout(run.timeout, async {
                while let Some(chunk) = output.next().await {
                    let chunk = chunk.map_err(|e| engine_error("read the installer's output", e))?;
                    let _ = log.send(chunk.into_bytes());
                }
                Ok::<(), DriverError>(())
            });
            followed.await.map_err(|_| {
                DriverError(format!(
                    "the install script did not finish within {}",
                    humantime::format_duration(run.timeout)
                ))
            })??;
            let inspected = engine
                .inspect_container(&name, None)
                .await
                .map_err(|e| engine_error("inspect the installer", e))?;
            Ok(inspected.state.and_then(|s| s.exit_code).unwrap_or(-1))
        }
        .await;
        let _ = engine.remove_container(&name, Some(force)).await;
        ran
    }

    async fn destroy(&self, server_id: i64, teardown: Teardown) -> Result<(), DriverError> {
        let engine = self.engine().await?;
        let name = self.name(server_id);
        let stopped = match teardown {
            // SIGTERM to init, passed to the agent, which stops the game gracefully.
            Teardown::Graceful => {
                engine
                    .stop_container(&name, Some(StopContainerOptions { t: Some(90), ..Default::default() }))
                    .await
            }
            Teardown::Immediate => {
                engine.kill_container(&name, Some(KillContainerOptions { signal: "KILL".into() })).await
            }
        };
        match stopped {
            Ok(()) => {}
            Err(EngineError::DockerResponseServerError { status_code: 304 | 404 | 409, .. }) => {}
            Err(e) => return Err(engine_error("stop the container", e)),
        }
        self.remove_everything(&engine, server_id).await
    }
}
