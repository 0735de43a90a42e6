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
        "local_driver",
        "console",
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
    /// `sqlite://...`; defaults to `zlh.db` in the data directory.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Accounts and tokens.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The heartbeat poller.
    #[serde(default)]
    pub poller: PollerConfig,
    /// Server creation.
    #[serde(default)]
    pub provisioning: ProvisioningConfig,
    /// The `local` driver.
    #[serde(default)]
    pub local_driver: LocalDriverConfig,
    /// The console WebSocket proxy.
    #[serde(default)]
    pub console: ConsoleConfig,
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
    /// Failed sign-ins allowed per email address (and ten times that per client address)
    /// within `failed_login_window`.
    #[serde(default = "default_max_failed_logins")]
    pub max_failed_logins: u32,
    /// The window of `max_failed_logins`.
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
}

impl Default for ProvisioningConfig {
    fn default() -> Self {
        ProvisioningConfig { timeout: default_provision_timeout() }
    }
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
fn default_failed_login_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_poll_interval() -> Duration {
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
        let table = zlh_proto::settings::load_toml(text, ENV_OVERRIDES, env).map_err(ConfigError)?;
        let config: ControlConfig =
            table.try_into().map_err(|e: toml::de::Error| ConfigError(e.to_string()))?;
        if config.poller.max_in_flight == 0 {
            return Err(ConfigError("poller.max_in_flight must be at least 1".into()));
        }
        Ok(config)
    }

    /// The URL people reach the portal at.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The database URL.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("zlh.db").display()))
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
        assert!(config.database_url().ends_with("zlh-data/zlh.db"));
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
    fn the_token_secret_never_prints() {
        let config =
            ControlConfig::load("[auth]\ntoken_secret = \"do-not-print-me\"\n", Vec::new()).expect("valid");
        assert!(!format!("{config:?}").contains("do-not-print-me"));
    }
}
