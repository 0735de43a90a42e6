//! The agent's configuration: one TOML file, every key overridable by a `ZLH_AGENT_*` variable
//! (rules in `zlh_proto::settings`; names under `game.env` keep their case:
//! `ZLH_AGENT_GAME__ENV__JAVA_OPTS=-Xmx2G`).
//!
//! Parsed once at start-up into [`AgentConfig`] and passed down explicitly. The environment is an
//! argument of [`AgentConfig::load`], not read here, so tests never touch the process env.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer};
use zlh_proto::Secret;
use zlh_proto::settings::{EnvOverrides, duration, duration_list, lenient_secret, lenient_string_map};

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
    pub game: GameTemplate,
    /// Crash recovery policy.
    #[serde(default)]
    pub recovery: RecoveryPolicy,
    /// Console scrollback and viewers.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// Present for development containers: the dev user, runtimes and code-server.
    #[serde(default)]
    pub dev: Option<DevConfig>,
    /// The artifact catalog mods are installed from.
    #[serde(default)]
    pub catalog_url: Option<String>,
    /// Backups of the server directory.
    #[serde(default)]
    pub backups: BackupConfig,
    /// The file API.
    #[serde(default)]
    pub files: FilesConfig,
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
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig { max_upload_bytes: default_max_upload(), max_unpacked_bytes: default_max_unpacked() }
    }
}

fn default_backup_dir() -> PathBuf {
    PathBuf::from("/var/lib/zlh/backups")
}
fn default_backup_keep() -> usize {
    10
}
fn default_backup_level() -> i32 {
    3
}
fn default_max_upload() -> u64 {
    2 << 30
}
fn default_max_unpacked() -> u64 {
    16 << 30
}
fn default_mods_dir() -> PathBuf {
    PathBuf::from("mods")
}
fn default_quiesce_timeout() -> Duration {
    Duration::from_secs(60)
}

/// A development container: provisioned before its main process (a shell) starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// The artifact catalog (`.../devcontainer/_catalog.json`).
    pub catalog_url: String,
    /// The runtime to install (`node`); none for a bare container.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Its version; the catalog's newest when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Install and run code-server.
    #[serde(default)]
    pub code_server: bool,
    /// code-server's version; the catalog's newest when absent.
    #[serde(default)]
    pub code_server_version: Option<String>,
    /// code-server's port on all interfaces (the control plane's proxy is the only door).
    #[serde(default = "default_code_server_port")]
    pub code_server_port: u16,
    /// The user shells and code-server run as, when the agent runs as root in a container.
    #[serde(default = "default_dev_user")]
    pub user: String,
    /// The workspace, relative to `root`.
    #[serde(default = "default_workspace")]
    pub workspace: PathBuf,
}

fn default_code_server_port() -> u16 {
    6000
}
fn default_dev_user() -> String {
    "dev".into()
}
fn default_workspace() -> PathBuf {
    PathBuf::from("/home/dev/workspace")
}

/// How to run, recognise and stop one game server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameTemplate {
    /// Program and arguments. The program is looked up on `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// Working directory, relative to `root`; created if missing.
    #[serde(default = "default_working_dir")]
    pub working_dir: PathBuf,
    /// Extra environment for the game. The game never inherits the agent's own environment
    /// (which holds the agent secret): it gets `PATH`, `HOME`, `LANG`, `TERM` and these.
    #[serde(default, deserialize_with = "lenient_string_map")]
    pub env: BTreeMap<String, String>,
    /// The first step of a graceful stop.
    #[serde(default)]
    pub stop: StopMethod,
    /// How long to wait after the stop command (or signal) before sending SIGTERM.
    #[serde(default = "default_stop_timeout", with = "duration")]
    pub stop_timeout: Duration,
    /// How long to wait after SIGTERM before sending SIGKILL.
    #[serde(default = "default_term_timeout", with = "duration")]
    pub term_timeout: Duration,
    /// A line of console output matching this regex means the server is ready (Minecraft:
    /// `Done \(`). Without one, the server counts as running once its process runs.
    #[serde(default, with = "optional_regex")]
    pub ready_pattern: Option<Regex>,
    /// Extra crash patterns, added to the built-in ones.
    #[serde(default)]
    pub crash_patterns: CrashPatterns,
    /// Commands that make the game's files safe to copy while it runs (Minecraft: `save-off`,
    /// `save-all flush`, then `save-on`), around every backup of a running server.
    #[serde(default)]
    pub quiesce: Option<Quiesce>,
    /// Where mods (or plugins) live, relative to the working directory.
    #[serde(default = "default_mods_dir")]
    pub mods_dir: PathBuf,
    /// Start the server when a fresh agent (no saved state) starts. Afterwards the last
    /// start or stop decides, across agent and container restarts.
    #[serde(default)]
    pub autostart: bool,
}

/// Console commands around a backup of a running server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiesce {
    /// Sent before copying, in order.
    pub before: Vec<String>,
    /// A console line (regex) that means the files are flushed, waited for after `before`.
    #[serde(default, with = "optional_regex")]
    pub wait_for: Option<Regex>,
    /// Sent after copying, whatever happened.
    #[serde(default)]
    pub after: Vec<String>,
    /// How long to wait for `wait_for`.
    #[serde(default = "default_quiesce_timeout", with = "duration")]
    pub timeout: Duration,
}

/// The first step of a graceful stop.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StopMethod {
    /// Write this line to the console (Minecraft: `stop`).
    Command(String),
    /// Send this signal (`SIGINT`, `SIGTERM`, ...) to the game's process group.
    Signal(SignalName),
}

impl Default for StopMethod {
    fn default() -> Self {
        StopMethod::Command("stop".to_owned())
    }
}

/// A signal named in configuration, checked against the signals a stop may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub rustix::process::Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use rustix::process::Signal;
        let name = String::deserialize(deserializer)?;
        let signal = match name.trim_start_matches("SIG") {
            "INT" => Signal::INT,
            "TERM" => Signal::TERM,
            "HUP" => Signal::HUP,
            "QUIT" => Signal::QUIT,
            "USR1" => Signal::USR1,
            "USR2" => Signal::USR2,
            "KILL" => Signal::KILL,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "unknown stop signal {other:?} (use SIGINT, SIGTERM, SIGHUP, SIGQUIT, \
                     SIGUSR1, SIGUSR2 or SIGKILL)"
                )));
            }
        };
        Ok(SignalName(signal))
    }
}

/// Extra regexes per classification; a line matching one classifies the crash.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashPatterns {
    /// Lines that mean the process ran out of memory.
    #[serde(default, with = "regex_list")]
    pub oom: Vec<Regex>,
    /// Lines that mean a class, library or required mod is missing.
    #[serde(default, with = "regex_list")]
    pub missing_dependency: Vec<Regex>,
    /// Lines that blame a mod or plugin.
    #[serde(default, with = "regex_list")]
    pub mod_or_plugin_error: Vec<Regex>,
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
fn default_working_dir() -> PathBuf {
    PathBuf::from("/opt/zlh/server")
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_term_timeout() -> Duration {
    Duration::from_secs(10)
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

mod optional_regex {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| Regex::new(&t).map_err(serde::de::Error::custom)).transpose()
    }
}

mod regex_list {
    use regex::Regex;
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Regex>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| Regex::new(t).map_err(serde::de::Error::custom)).collect()
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
