//! The control plane's configuration: a TOML file (or none: `zlh up`'s embedded defaults),
//! every key overridable by a `ZLH_*` variable (rules in `zlh_proto::settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use zlh_proto::Secret;
use zlh_proto::settings::{EnvOverrides, duration, lenient_optional_secret};

/// Which environment variables override which keys.
pub const ENV_OVERRIDES: EnvOverrides<'static> = EnvOverrides {
    prefix: "ZLH_",
    known_keys: &[
        "listen",
        "public_url",
        "data_dir",
        "database_url",
        "auth",
        "poller",
        "provisioning",
        "schedules",
        "local_driver",
        "console",
        "ide",
        "artifacts",
        "node",
        "driver",
        "docker",
        "metrics",
    ],
    free_form_maps: &[],
};

/// Everything the control plane needs to know.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Address of the API and portal.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL people reach the portal at (reset links, allowed WebSocket origins). Defaults
    /// to `http://<listen>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where the database, secrets and local servers live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://...` (the default: `zlh.db` in the data directory) or
    /// `postgres://user:password@host/database` (several control planes on one database). A
    /// secret: it may hold a password.
    #[serde(default, deserialize_with = "lenient_optional_secret")]
    pub database_url: Option<Secret>,
    /// On SIGTERM, how long a replica keeps answering after `/health` turned 503, so the load
    /// balancer stops sending it requests first (skipped when no other replica is alive).
    #[serde(default = "default_drain_delay", with = "duration")]
    pub drain_delay: Duration,
    /// Accounts and tokens.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The heartbeat poller.
    #[serde(default)]
    pub poller: PollerConfig,
    /// Server creation.
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    /// Servers' schedules.
    #[serde(default)]
    pub schedules: SchedulesConfig,
    /// Where new servers run: `local` (processes of this machine, for trying the product) or
    /// `docker` (a container each).
    #[serde(default)]
    pub driver: DriverKind,
    /// The `docker` driver.
    #[serde(default)]
    pub docker: DockerConfig,
    /// `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The `local` driver.
    #[serde(default)]
    pub local_driver: LocalDriverConfig,
    /// The machine servers run on: its public address and game ports.
    #[serde(default)]
    pub node: NodeConfig,
    /// The console WebSocket proxy.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The browser IDE: tokens, hosts, the proxy to code-server.
    #[serde(default)]
    pub ide: IdeConfig,
    /// The artifact store (runtimes and addons for dev containers).
    #[serde(default)]
    pub artifacts: ArtifactsConfig,
    /// Images as templates and eggs name them → the image this host runs instead, for hosts
    /// without registry access (`"ghcr.io/pterodactyl/yolks:java_21" = "local/java21"`).
    #[serde(default)]
    pub images: std::collections::BTreeMap<String, String>,
}

impl ControlConfig {
    /// The image this host runs for `reference`.
    pub fn image_for(&self, reference: &str) -> String {
        self.images.get(reference).cloned().unwrap_or_else(|| reference.to_owned())
    }
}

/// The browser IDE. The original platform's environment names still work:
/// `API_AUTH_IDE_TTL_SECONDS`, `API_AUTH_IDE_SECRET`, `DEV_IDE_HOST_SUFFIX`,
/// `DEV_IDE_RETURN_HOSTED_URL`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdeConfig {
    /// Lifetime of the single-use token in the IDE link.
    #[serde(default = "default_ide_token_ttl", with = "duration")]
    pub token_ttl: Duration,
    /// Signing key of IDE tokens and cookies; generated into the data directory when absent.
    #[serde(default, deserialize_with = "lenient_optional_secret")]
    pub token_secret: Option<Secret>,
    /// Hosted form: `dev-<id>.<host_suffix>` serves the IDE of server `<id>`. Defaults to
    /// `localhost` when the public URL is on loopback (browsers resolve `*.localhost` there).
    #[serde(default)]
    pub host_suffix: Option<String>,
    /// Whether `ide-token` returns the hosted URL; defaults to yes when there is a host suffix.
    #[serde(default)]
    pub return_hosted_url: Option<bool>,
    /// Whether the path form (`/__ide/<id>/`) is served.
    #[serde(default = "yes")]
    pub path_form: bool,
    /// The origin the path form is served at (`https://ide.example.com`): another name of this
    /// control plane, never the portal's, so that no page of an IDE shares the portal's origin.
    /// On a loopback public URL it defaults to the other loopback name (`localhost` for
    /// `127.0.0.1` and back); elsewhere the path form needs it.
    #[serde(default)]
    pub path_origin: Option<String>,
    /// Lifetime of the IDE cookie after a link was opened.
    #[serde(default = "default_ide_session_ttl", with = "duration")]
    pub session_ttl: Duration,
}

impl Default for IdeConfig {
    fn default() -> Self {
        IdeConfig {
            token_ttl: default_ide_token_ttl(),
            token_secret: None,
            host_suffix: None,
            return_hosted_url: None,
            path_form: true,
            path_origin: None,
            session_ttl: default_ide_session_ttl(),
        }
    }
}

/// The artifact store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactsConfig {
    /// The catalog agents install from; by default this control plane serves one from
    /// `<data_dir>/artifacts` at `<public_url>/artifacts/`.
    #[serde(default)]
    pub catalog_url: Option<String>,
}

/// Accounts and tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether anyone may create an account (`POST /api/auth/register`).
    #[serde(default = "yes")]
    pub allow_registration: bool,
    /// Lifetime of access tokens.
    #[serde(default = "default_access_ttl", with = "duration")]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[serde(default = "default_refresh_ttl", with = "duration")]
    pub refresh_token_ttl: Duration,
    /// Lifetime of password reset tokens.
    #[serde(default = "default_reset_ttl", with = "duration")]
    pub reset_token_ttl: Duration,
    /// Signing key for tokens; generated into the data directory when absent.
    #[serde(default, deserialize_with = "lenient_optional_secret")]
    pub token_secret: Option<Secret>,
    /// Failed sign-ins of an account from one address that cost nothing within
    /// `failed_login_window` (ten times that per address, and per account from anywhere); after
    /// them every failure doubles the wait before the next attempt (up to a minute). Nobody is
    /// locked out.
    #[serde(default = "default_max_failed_logins")]
    pub max_failed_logins: u32,
    /// Accounts one address may create within `failed_login_window` before each further one
    /// waits longer (up to an hour).
    #[serde(default = "default_registrations_per_address")]
    pub registrations_per_address: u32,
    /// How long failures are remembered.
    #[serde(default = "default_failed_login_window", with = "duration")]
    pub failed_login_window: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_registration: true,
            access_token_ttl: default_access_ttl(),
            refresh_token_ttl: default_refresh_ttl(),
            reset_token_ttl: default_reset_ttl(),
            token_secret: None,
            max_failed_logins: default_max_failed_logins(),
            registrations_per_address: default_registrations_per_address(),
            failed_login_window: default_failed_login_window(),
        }
    }
}

/// The heartbeat poller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    /// How often each agent is polled (each agent gets a random phase and ±10 % jitter).
    #[serde(default = "default_poll_interval", with = "duration")]
    pub interval: Duration,
    /// Timeout of each request to an agent.
    #[serde(default = "default_agent_timeout", with = "duration")]
    pub timeout: Duration,
    /// Polls in flight at once, across all agents.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// After this many failed polls in a row, the driver is asked to revive the agent.
    #[serde(default = "default_revive_after")]
    pub revive_after_failures: u32,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            interval: default_poll_interval(),
            timeout: default_agent_timeout(),
            max_in_flight: default_max_in_flight(),
            revive_after_failures: default_revive_after(),
        }
    }
}

/// Server creation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisioningConfig {
    /// How long a new server may take to become ready before it is cleaned up.
    #[serde(default = "default_provision_timeout", with = "duration")]
    pub timeout: Duration,
    /// How many servers a customer may have (admins have no limit).
    #[serde(default = "default_max_servers_per_user")]
    pub max_servers_per_user: u32,
    /// How long a template's install step may run before it counts as failed.
    #[serde(default = "default_install_timeout", with = "duration")]
    pub install_timeout: Duration,
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        ProvisioningConfig {
            timeout: default_provision_timeout(),
            max_servers_per_user: default_max_servers_per_user(),
            install_timeout: default_install_timeout(),
        }
    }
}

/// Servers' schedules, run by the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesConfig {
    /// A run that fell due while the control plane was down is run once when it is back, if it
    /// is at most this late (however many times it fell due meanwhile); an older one is
    /// recorded as `missed` and not run.
    #[serde(default = "default_catch_up", with = "duration")]
    pub catch_up: Duration,
}

impl Default for SchedulesConfig {
    fn default() -> Self {
        SchedulesConfig { catch_up: default_catch_up() }
    }
}

fn default_catch_up() -> Duration {
    Duration::from_secs(60 * 60)
}

fn default_install_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_max_servers_per_user() -> u32 {
    10
}

/// `/metrics`: off unless a token is configured, which scrapers send as a bearer token (the
/// numbers describe every customer's servers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The bearer token scrapers send.
    #[serde(default, deserialize_with = "lenient_optional_secret")]
    pub token: Option<Secret>,
}

/// Where new servers run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverKind {
    /// Processes of this machine, as the control plane's user: for trying the product alone.
    #[default]
    Local,
    /// A container per server.
    Docker,
}

/// The `docker` driver: the engine, the servers' image and network, and their limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// The engine's API: `unix:///var/run/docker.sock`, or `tcp://host:2376` with `[docker.tls]`
    /// (a remote engine; plain `http://host:2375` only on a network nobody else reaches).
    #[serde(default = "default_docker_endpoint")]
    pub endpoint: String,
    /// Mutual TLS to a remote engine (`dockerd --tlsverify`).
    #[serde(default)]
    pub tls: Option<EngineTls>,
    /// The image of servers whose template names none. Never pulled: build or import it.
    #[serde(default = "default_docker_image")]
    pub image: String,
    /// The network servers join (created with traffic between containers off).
    #[serde(default = "default_docker_network")]
    pub network: String,
    /// Where agents and code-servers are published for the control plane (never the public
    /// address).
    #[serde(default = "default_agent_address")]
    pub agent_address: String,
    /// The ports agents and code-servers are published on with a remote engine (`[first,
    /// last]`), each server's kept in its spec; with an engine on this machine, the kernel
    /// picks free ones.
    #[serde(default = "default_agent_ports")]
    pub agent_ports: [u16; 2],
    /// `uid:gid` everything in a server's container runs as.
    #[serde(default = "default_docker_user")]
    pub user: String,
    /// The artifact catalog as containers reach it, when the control plane's own URL is not
    /// reachable from them.
    #[serde(default)]
    pub catalog_url: Option<String>,
    /// A server's limits unless its template or its owner chose others.
    #[serde(default)]
    pub limits: Limits,
    /// The most an owner may choose for a server.
    #[serde(default = "Limits::maximum")]
    pub max_limits: Limits,
    /// The size of a server's `/tmp` (in memory) in MiB.
    #[serde(default = "default_tmp_mb")]
    pub tmp_mb: u32,
}

/// The files of mutual TLS with an engine, as `docker --tlsverify` uses them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineTls {
    /// The CA that signed the engine's certificate.
    pub ca: PathBuf,
    /// This control plane's client certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            endpoint: default_docker_endpoint(),
            tls: None,
            image: default_docker_image(),
            network: default_docker_network(),
            agent_address: default_agent_address(),
            agent_ports: default_agent_ports(),
            user: default_docker_user(),
            catalog_url: None,
            limits: Limits::default(),
            max_limits: Limits::maximum(),
            tmp_mb: default_tmp_mb(),
        }
    }
}

/// What a server's container may use.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory in MiB, swap included (none beyond it).
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// CPUs (1.5 = one and a half cores).
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Processes and threads.
    #[serde(default = "default_pids")]
    pub pids: u32,
    /// Block IO weight (10 to 1000).
    #[serde(default = "default_io_weight")]
    pub io_weight: u16,
    /// Disk space in MiB for the server's files, backups and agent state (0: unlimited).
    #[serde(default = "default_disk_mb")]
    pub disk_mb: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: default_memory_mb(),
            cpus: default_cpus(),
            pids: default_pids(),
            io_weight: default_io_weight(),
            disk_mb: default_disk_mb(),
        }
    }
}

impl Limits {
    /// The default ceiling an owner may choose up to.
    fn maximum() -> Limits {
        Limits { memory_mb: 8192, cpus: 4.0, pids: 4096, io_weight: 1000, disk_mb: 102_400 }
    }

    /// As the API says them.
    pub fn resolved(&self) -> zlh_proto::api::ResourceLimits {
        zlh_proto::api::ResourceLimits {
            memory_mb: self.memory_mb,
            cpus: self.cpus,
            pids: self.pids,
            io_weight: self.io_weight,
            disk_mb: self.disk_mb,
        }
    }
}

fn default_docker_endpoint() -> String {
    "unix:///var/run/docker.sock".into()
}
fn default_docker_image() -> String {
    "debian:bookworm-slim".into()
}
fn default_docker_network() -> String {
    "zlh".into()
}
fn default_agent_address() -> String {
    "127.0.0.1".into()
}
fn default_agent_ports() -> [u16; 2] {
    [40_000, 44_999]
}
fn default_docker_user() -> String {
    "1000:1000".into()
}
fn default_memory_mb() -> u32 {
    2048
}
fn default_cpus() -> f64 {
    2.0
}
fn default_pids() -> u32 {
    512
}
fn default_io_weight() -> u16 {
    500
}
fn default_disk_mb() -> u32 {
    10_240
}
fn default_tmp_mb() -> u32 {
    64
}

/// The node this control plane drives: where players connect, and the game ports it hands out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Its name in the store.
    #[serde(default = "default_node_name")]
    pub name: String,
    /// The address players connect to (the host's public IP or name).
    #[serde(default = "default_public_address")]
    pub public_address: String,
    /// The first game port handed out.
    #[serde(default = "default_first_port")]
    pub first_port: u16,
    /// The last game port handed out.
    #[serde(default = "default_last_port")]
    pub last_port: u16,
    /// Memory (MiB) its servers' limits may add up to: the engine's host's memory when unset,
    /// 0 to hand out any amount.
    #[serde(default)]
    pub memory_mb: Option<u32>,
    /// Disk (MiB) its servers' quotas may add up to; unset or 0: any amount.
    #[serde(default)]
    pub disk_mb: Option<u32>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: default_node_name(),
            public_address: default_public_address(),
            first_port: default_first_port(),
            last_port: default_last_port(),
            memory_mb: None,
            disk_mb: None,
        }
    }
}

fn default_node_name() -> String {
    "local".into()
}
fn default_public_address() -> String {
    "127.0.0.1".into()
}
fn default_first_port() -> u16 {
    25565
}
fn default_last_port() -> u16 {
    25664
}

/// The `local` driver: servers are directories, agents are child processes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalDriverConfig {
    /// Keys merged into every generated agent configuration (such as `[recovery]` or
    /// `[console]`), so an operator can tune agents without editing each one.
    #[serde(default)]
    pub agent_defaults: toml::Table,
    /// Extra game templates (`*.toml`); defaults to `templates/` in the data directory.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// Let customers (not only admins) create dev servers on this driver. A dev server's
    /// console is a shell of this machine's user, which can read every other server and the
    /// control plane's secrets: only for an operator who trusts every account.
    #[serde(default)]
    pub customer_dev_servers: bool,
}

/// The console WebSocket proxy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Origins (`https://panel.example.com`) allowed to open consoles, besides `public_url`'s.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// How long a console ticket stays valid.
    #[serde(default = "default_ticket_ttl", with = "duration")]
    pub ticket_ttl: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { allowed_origins: Vec::new(), ticket_ttl: default_ticket_ttl() }
    }
}

fn yes() -> bool {
    true
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("zlh-data")
}
fn default_access_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_refresh_ttl() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_reset_ttl() -> Duration {
    Duration::from_secs(3600)
}
fn default_max_failed_logins() -> u32 {
    5
}
fn default_registrations_per_address() -> u32 {
    10
}
fn default_failed_login_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_drain_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_agent_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_in_flight() -> usize {
    256
}
fn default_revive_after() -> u32 {
    3
}
fn default_provision_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_ticket_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_ide_token_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_ide_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}

/// The original platform's environment names, as overrides of `[ide]` keys.
fn legacy_env(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    env.into_iter()
        .map(|(key, value)| match key.as_str() {
            "API_AUTH_IDE_TTL_SECONDS" => ("ZLH_IDE__TOKEN_TTL".into(), format!("{value}s")),
            "API_AUTH_IDE_SECRET" => ("ZLH_IDE__TOKEN_SECRET".into(), value),
            "DEV_IDE_HOST_SUFFIX" => ("ZLH_IDE__HOST_SUFFIX".into(), value),
            "DEV_IDE_RETURN_HOSTED_URL" => {
                ("ZLH_IDE__RETURN_HOSTED_URL".into(), (value == "1" || value == "true").to_string())
            }
            _ => (key, value),
        })
        .collect()
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid control plane configuration: {0}")]
pub struct ConfigError(String);

impl ControlConfig {
    /// Parses the TOML text (empty for all defaults), applies `ZLH_*` overrides from `env`.
    pub fn load(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<ControlConfig, ConfigError> {
        let table =
            zlh_proto::settings::load_toml(text, ENV_OVERRIDES, legacy_env(env)).map_err(ConfigError)?;
        let config: ControlConfig =
            table.try_into().map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
        if config.poller.max_in_flight == 0 {
            return Err(ConfigError("poller.max_in_flight must be at least 1".into()));
        }
        if config.node.first_port == 0 || config.node.first_port > config.node.last_port {
            return Err(ConfigError("node.first_port must be 1 or more, and at most node.last_port".into()));
        }
        Ok(config)
    }

    /// Where operators' game templates live: `[local_driver] templates_dir`, or `templates/` in
    /// the data directory.
    pub fn templates_dir(&self) -> PathBuf {
        self.local_driver.templates_dir.clone().unwrap_or_else(|| self.data_dir.join("templates"))
    }

    /// The URL people reach the portal at.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The hosted IDE's host suffix, if the hosted form is on.
    pub fn ide_host_suffix(&self) -> Option<String> {
        let configured = self.ide.host_suffix.clone().filter(|s| !s.is_empty());
        let loopback =
            ["//127.0.0.1", "//localhost", "//[::1]"].iter().any(|h| self.public_url().contains(h));
        configured.or_else(|| loopback.then(|| "localhost".to_owned()))
    }

    /// The origin of the IDE's path form, when it is served: configured, or on a loopback
    /// public URL the other loopback name with the same port. Never the portal's own origin.
    pub fn ide_path_origin(&self) -> Option<String> {
        if !self.ide.path_form {
            return None;
        }
        let public = self.public_url();
        let origin =
            self.ide.path_origin.clone().map(|o| o.trim_end_matches('/').to_owned()).or_else(|| {
                let (scheme, rest) = public.split_once("://")?;
                let authority = rest.split('/').next()?;
                let other = match authority.rsplit_once(':') {
                    Some(("127.0.0.1", port)) => format!("localhost:{port}"),
                    Some(("localhost", port)) => format!("127.0.0.1:{port}"),
                    _ => return None,
                };
                Some(format!("{scheme}://{other}"))
            })?;
        (origin != public.trim_end_matches('/')).then_some(origin)
    }

    /// Where agents find the artifact catalog.
    pub fn catalog_url(&self) -> String {
        self.artifacts.catalog_url.clone().unwrap_or_else(|| {
            format!("{}/artifacts/{}", self.public_url(), zlh_proto::catalog::CATALOG_PATH)
        })
    }

    /// The database URL.
    pub fn database_url(&self) -> Secret {
        self.database_url
            .clone()
            .unwrap_or_else(|| Secret::new(format!("sqlite://{}", self.data_dir.join("zlh.db").display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_and_overrides() {
        let config = ControlConfig::load("", Vec::new()).expect("defaults");
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert!(config.database_url().expose().ends_with("zlh-data/zlh.db"));
        let env = [
            ("ZLH_AUTH__ALLOW_REGISTRATION", "false"),
            ("ZLH_POLLER__INTERVAL", "250ms"),
            ("ZLH_LOG", "debug"),
            ("ZLH_AGENT_SECRET", "belongs to agents, ignored here"),
        ];
        let config = ControlConfig::load("", env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("overrides");
        assert!(!config.auth.allow_registration);
        assert_eq!(config.poller.interval, Duration::from_millis(250));
    }

    #[test]
    fn the_original_ide_environment_names_work() {
        let env = [
            ("API_AUTH_IDE_TTL_SECONDS", "120"),
            ("API_AUTH_IDE_SECRET", "legacy-ide-secret"),
            ("DEV_IDE_HOST_SUFFIX", "zerolaghub.dev"),
            ("DEV_IDE_RETURN_HOSTED_URL", "true"),
        ];
        let config =
            ControlConfig::load("", env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).expect("valid");
        assert_eq!(config.ide.token_ttl, Duration::from_secs(120));
        assert_eq!(config.ide.token_secret.as_ref().map(Secret::expose), Some("legacy-ide-secret"));
        assert_eq!(config.ide_host_suffix().as_deref(), Some("zerolaghub.dev"));
        assert_eq!(config.ide.return_hosted_url, Some(true));
        let local = ControlConfig::load("", Vec::new()).expect("defaults");
        assert_eq!(local.ide_host_suffix().as_deref(), Some("localhost"), "loopback portals get *.localhost");
        assert!(local.catalog_url().ends_with("/artifacts/devcontainer/_catalog.json"));
    }

    #[test]
    fn the_token_secret_never_prints() {
        let config =
            ControlConfig::load("[auth]\ntoken_secret = \"do-not-print-me\"\n", Vec::new()).expect("valid");
        assert!(!format!("{config:?}").contains("do-not-print-me"));
    }
}
