//! The agent's configuration: one TOML file, every key overridable by a `ZLH_AGENT_*` variable
//! (rules in `zlh_proto::settings`; names under `game.env` keep their case:
//! `ZLH_AGENT_GAME__ENV__JAVA_OPTS=-Xmx2G`).
//!
//! `[game]` and `[dev]` are the sections the control plane writes (`zlh_proto::agent_config`);
//! the rest is the agent's own tuning.
//!
//! Parsed once at start-up into [`AgentConfig`] and passed down explicitly. The environment is an
//! argument of [`AgentConfig::load`], not read here, so tests never touch the process env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use zlh_proto::Secret;
pub use zlh_proto::agent_config::{CrashPatterns, DevSection, DiskSection, GameSection, Quiesce, StopMethod};
use zlh_proto::settings::{EnvOverrides, duration, duration_list, lenient_secret};

/// Which environment variables override which keys.
pub const ENV_OVERRIDES: EnvOverrides<'static> = EnvOverrides {
    prefix: "ZLH_AGENT_",
    known_keys: &[
        "listen",
        "secret",
        "root",
        "state_dir",
        "game",
        "recovery",
        "console",
        "dev",
        "backups",
        "files",
        "catalog_url",
        "disk",
        "container",
    ],
    free_form_maps: &[&["game", "env"]],
};

/// Everything the agent needs to know, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address of the HTTP API (`127.0.0.1:0` picks a free port; the bound one is logged).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer secret every route but `/health` requires.
    #[serde(deserialize_with = "lenient_secret")]
    pub secret: Secret,
    /// The filesystem root that absolute paths below are relative to: `/` in a container, a
    /// temporary directory in tests.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Where the agent keeps its state (crash history, the running process, holder sockets).
    /// Relative to `root`.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The supervised game server.
    pub game: GameSection,
    /// Crash recovery policy.
    #[serde(default)]
    pub recovery: RecoveryPolicy,
    /// Console scrollback and viewers.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Present for development containers: the dev user, runtimes and code-server.
    #[serde(default)]
    pub dev: Option<DevSection>,
    /// The artifact catalog mods are installed from.
    #[serde(default)]
    pub catalog_url: Option<String>,
    /// Backups of the server directory.
    #[serde(default)]
    pub backups: BackupConfig,
    /// The file API.
    #[serde(default)]
    pub files: FilesConfig,
    /// The server's disk limit, as its driver set it up (none: unlimited).
    #[serde(default)]
    pub disk: Option<DiskSection>,
    /// Whether the agent is alone with its server in a container: then its cgroup and network
    /// interfaces are the server's, and it reports their usage.
    #[serde(default)]
    pub container: bool,
}

/// Backups of the server directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Where backups are kept, relative to `root` (outside the server directory, so a restore
    /// never replaces them).
    #[serde(default = "default_backup_dir")]
    pub dir: PathBuf,
    /// How many backups to keep; the oldest go first.
    #[serde(default = "default_backup_keep")]
    pub keep: usize,
    /// Paths (globs, relative to the server directory) never backed up.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// zstd level (1 fastest .. 19 smallest).
    #[serde(default = "default_backup_level")]
    pub level: i32,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: default_backup_dir(),
            keep: default_backup_keep(),
            exclude: Vec::new(),
            level: default_backup_level(),
        }
    }
}

/// The file API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The largest upload accepted, in bytes.
    #[serde(default = "default_max_upload")]
    pub max_upload_bytes: u64,
    /// The most an archive may unpack to, in bytes.
    #[serde(default = "default_max_unpacked")]
    pub max_unpacked_bytes: u64,
    /// An upload whose client sends nothing for this long is abandoned (its temporary file
    /// removed).
    #[serde(default = "default_upload_stall_timeout", with = "duration")]
    pub upload_stall_timeout: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_upload_bytes: default_max_upload(),
            max_unpacked_bytes: default_max_unpacked(),
            upload_stall_timeout: default_upload_stall_timeout(),
        }
    }
}

fn default_upload_stall_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_backup_dir() -> PathBuf {
    PathBuf::from("/var/lib/zlh/backups")
}
fn default_backup_keep() -> usize {
    10
}
/// zstd's fastest level: on world data it made archives 0.3 % larger than level 3 (zstd's
/// own default) at two to three times the speed, which is what lets a backup with every
/// file hashed finish before `tar --zstd` does.
fn default_backup_level() -> i32 {
    1
}
fn default_max_upload() -> u64 {
    2 << 30
}
fn default_max_unpacked() -> u64 {
    16 << 30
}
/// Crash recovery: backoff between automatic restarts and when to give up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPolicy {
    /// Delay before the automatic restart after the 1st, 2nd, ... crash in a row; the last
    /// entry repeats.
    #[serde(default = "default_backoff", with = "duration_list")]
    pub backoff: Vec<Duration>,
    /// A run that lasted at least this long resets the count of crashes in a row.
    #[serde(default = "default_reset_after", with = "duration")]
    pub reset_after: Duration,
    /// After this many crashes in a row the server goes to `error` and is not restarted.
    #[serde(default = "default_max_consecutive_crashes")]
    pub max_consecutive_crashes: u32,
    /// How many crash records to keep.
    #[serde(default = "default_crash_history")]
    pub crash_history: usize,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            backoff: default_backoff(),
            reset_after: default_reset_after(),
            max_consecutive_crashes: default_max_consecutive_crashes(),
            crash_history: default_crash_history(),
        }
    }
}

/// Console scrollback and viewer limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Bytes of scrollback kept (by the agent, and by each process holder).
    #[serde(default = "default_scrollback_bytes")]
    pub scrollback_bytes: usize,
    /// Console lines kept in a crash record.
    #[serde(default = "default_tail_lines")]
    pub tail_lines: usize,
    /// A viewer whose connection accepts no frame for this long is disconnected.
    #[serde(default = "default_viewer_stall_timeout", with = "duration")]
    pub viewer_stall_timeout: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            scrollback_bytes: default_scrollback_bytes(),
            tail_lines: default_tail_lines(),
            viewer_stall_timeout: default_viewer_stall_timeout(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7420))
}
fn default_root() -> PathBuf {
    PathBuf::from("/")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/zlh/agent")
}
fn default_backoff() -> Vec<Duration> {
    [30, 60, 120].map(Duration::from_secs).to_vec()
}
fn default_reset_after() -> Duration {
    Duration::from_secs(30)
}
fn default_max_consecutive_crashes() -> u32 {
    4
}
fn default_crash_history() -> usize {
    50
}
fn default_scrollback_bytes() -> usize {
    1 << 20
}
fn default_tail_lines() -> usize {
    100
}
fn default_viewer_stall_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an override is not valid TOML or does not fit the schema.
    #[error("invalid agent configuration: {0}")]
    Invalid(String),
}

impl AgentConfig {
    /// Parses the TOML text, applies `ZLH_AGENT_*` overrides from `env`, and validates.
    pub fn load(
        toml_text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<AgentConfig, ConfigError> {
        let table =
            zlh_proto::settings::load_toml(toml_text, ENV_OVERRIDES, env).map_err(ConfigError::Invalid)?;
        let config: AgentConfig = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string().trim_end().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.secret.expose().len() < 16 {
            return invalid("secret must be at least 16 characters");
        }
        if self.game.argv.first().is_none_or(|program| program.is_empty()) {
            return invalid("game.argv must name a program");
        }
        if self.recovery.backoff.is_empty() {
            return invalid("recovery.backoff needs at least one delay");
        }
        if self.recovery.max_consecutive_crashes == 0 {
            return invalid("recovery.max_consecutive_crashes must be at least 1");
        }
        if self.console.scrollback_bytes < 4096 {
            return invalid("console.scrollback_bytes must be at least 4096");
        }
        Ok(())
    }

    /// Resolves a configured absolute path beneath `root`.
    pub fn under_root(&self, path: &Path) -> PathBuf {
        let relative = path.strip_prefix("/").unwrap_or(path);
        self.root.join(relative)
    }

    /// The state directory, resolved beneath `root`.
    pub fn state_path(&self) -> PathBuf {
        self.under_root(&self.state_dir)
    }

    /// The game's working directory, resolved beneath `root`.
    pub fn server_root(&self) -> PathBuf {
        self.under_root(&self.game.working_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        secret = "0123456789abcdef0123"
        [game]
        argv = ["java", "-jar", "server.jar", "nogui"]
        ready_pattern = 'Done \('
    "#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_follow_the_original_platform() {
        let config = AgentConfig::load(MINIMAL, env(&[])).expect("valid");
        assert_eq!(config.recovery.backoff, [30, 60, 120].map(Duration::from_secs).to_vec());
        assert_eq!(config.recovery.reset_after, Duration::from_secs(30));
        assert_eq!(config.game.stop, StopMethod::Command("stop".into()));
        assert_eq!(config.console.scrollback_bytes, 1 << 20);
        assert!(config.game.ready_pattern.expect("pattern").is_match("[12:00] Done (3.2s)!"));
    }

    #[test]
    fn env_overrides_every_level_with_typed_values() {
        let config = AgentConfig::load(
            MINIMAL,
            env(&[
                ("ZLH_AGENT_LISTEN", "0.0.0.0:9000"),
                ("ZLH_AGENT_SECRET", "12345678901234567890"),
                ("ZLH_AGENT_GAME__STOP_TIMEOUT", "250ms"),
                ("ZLH_AGENT_GAME__ENV__SERVER_PORT", "25565"),
                ("ZLH_AGENT_RECOVERY__BACKOFF", r#"["10ms", "20ms"]"#),
                ("ZLH_AGENT_RECOVERY__MAX_CONSECUTIVE_CRASHES", "2"),
                ("UNRELATED", "ignored"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(config.secret.expose(), "12345678901234567890");
        assert_eq!(config.game.stop_timeout, Duration::from_millis(250));
        assert_eq!(config.game.env["SERVER_PORT"], "25565");
        assert_eq!(config.recovery.backoff.len(), 2);
        assert_eq!(config.recovery.max_consecutive_crashes, 2);
    }

    #[test]
    fn bad_configs_say_why() {
        let cases = [
            (
                r#"secret = "short"
                [game]
                argv = ["x"]"#,
                "at least 16",
            ),
            (
                r#"secret = "0123456789abcdef0123"
                [game]
                argv = []"#,
                "must name a program",
            ),
            (
                r#"secret = "0123456789abcdef0123"
                [game]
                argv = ["x"]
                stop_timeout = "soon""#,
                "not a duration",
            ),
            (
                r#"secret = "0123456789abcdef0123"
                [game]
                argv = ["x"]
                ready_pattern = "Done (""#,
                "regex",
            ),
            (
                r#"secret = "0123456789abcdef0123"
                [game]
                argv = ["x"]
                stop = { signal = "SIGWHAT" }"#,
                "unknown stop signal",
            ),
            (
                r#"secret = "0123456789abcdef0123"
                typo = 1
                [game]
                argv = ["x"]"#,
                "unknown field",
            ),
        ];
        for (text, expected) in cases {
            let err = AgentConfig::load(text, env(&[])).expect_err(text).to_string();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let config = AgentConfig::load(MINIMAL, env(&[])).expect("valid");
        assert!(!format!("{config:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn paths_resolve_beneath_root() {
        let mut config = AgentConfig::load(MINIMAL, env(&[])).expect("valid");
        config.root = PathBuf::from("/tmp/agent-root");
        assert_eq!(config.state_path(), PathBuf::from("/tmp/agent-root/var/lib/zlh/agent"));
        assert_eq!(config.server_root(), PathBuf::from("/tmp/agent-root/opt/zlh/server"));
    }
}
