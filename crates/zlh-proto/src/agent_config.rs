//! The sections of an agent's configuration that the control plane writes: what the server
//! runs (`[game]`) and, for a dev container, what it provisions (`[dev]`).
//!
//! The control plane builds these (from a template, or a customer's request) and serializes
//! them into the agent's TOML file; the agent deserializes the same types. Both sides agree on
//! the schema because there is only one. Everything else in the agent's file (its listener,
//! recovery and console tuning) belongs to the agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::settings::{duration, lenient_string_map};

/// How to run, recognise and stop one game server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameSection {
    /// Program and arguments. The program is looked up on `PATH` when it has no slash.
    pub argv: Vec<String>,
    /// Working directory, relative to the agent's root; created if missing.
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
    /// A line of console output matching this means the server is ready (Minecraft:
    /// `Done \(`). Without one, the server counts as running once its process runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_pattern: Option<Pattern>,
    /// Ports the game must be listening on before it counts as ready (the control plane fills
    /// in the ones it allocated): a game that prints its ready line and then fails to bind is
    /// not ready. Empty: the ready line alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen_ports: Vec<ListenPort>,
    /// A start not ready within this (its ready line not seen) is a crash, `start_timeout`:
    /// the game is stopped and restarted like any crash.
    #[serde(default = "default_start_timeout", with = "duration")]
    pub start_timeout: Duration,
    /// Extra crash patterns, added to the built-in ones.
    #[serde(default)]
    pub crash_patterns: CrashPatterns,
    /// Commands that make the game's files safe to copy while it runs (Minecraft: `save-off`,
    /// `save-all flush`, then `save-on`), around every backup of a running server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiesce: Option<Quiesce>,
    /// Where mods (or plugins) live, relative to the working directory.
    #[serde(default = "default_mods_dir")]
    pub mods_dir: PathBuf,
    /// Start the server when a fresh agent (no saved state) starts. Afterwards the last
    /// start or stop decides, across agent and container restarts.
    #[serde(default)]
    pub autostart: bool,
    /// Environment names (keys of `env`) the owner may set through the agent's
    /// `PUT /variables`; they apply at the next start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<String>,
    /// Config files edited before every start, with `{{…}}` placeholders filled from the
    /// environment (an egg's `config.files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigEdit>,
    /// Files of the working directory that must exist before the game can start (what the
    /// owner uploads: a `server.jar`, a world).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_files: Vec<String>,
    /// Paths the file API refuses to touch: glob patterns matched against the path in the
    /// working directory and against the file's name (`*.sqlite-journal`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_denylist: Vec<String>,
}

/// A config file the agent edits before each start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigEdit {
    /// The file, relative to the working directory.
    pub file: String,
    /// How it is read and written.
    pub parser: ConfigParser,
    /// What to set: a key (for `file`, the start of a line; for the structured formats a
    /// dotted path, `*` for every key or element) and its value, with placeholders.
    pub find: BTreeMap<String, String>,
}

/// The config file formats eggs edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigParser {
    /// Lines starting with a key are replaced by its value (appended when none does).
    File,
    /// Java `.properties`: `key=value`.
    Properties,
    /// INI: `section.key` (a key without a section is before the first one).
    Ini,
    /// YAML, by dotted path.
    Yaml,
    /// JSON, by dotted path.
    Json,
    /// XML, by dotted element path (existing elements only).
    Xml,
}

impl ConfigParser {
    /// The parser an egg names (`yml` is `yaml`).
    pub fn named(name: &str) -> Option<ConfigParser> {
        Some(match name {
            "file" => ConfigParser::File,
            "properties" => ConfigParser::Properties,
            "ini" => ConfigParser::Ini,
            "yaml" | "yml" => ConfigParser::Yaml,
            "json" => ConfigParser::Json,
            "xml" => ConfigParser::Xml,
            _ => return None,
        })
    }
}

impl GameSection {
    /// A game that runs `argv`, with every other setting at its default.
    pub fn new(argv: Vec<String>) -> GameSection {
        GameSection {
            argv,
            working_dir: default_working_dir(),
            env: BTreeMap::new(),
            stop: StopMethod::default(),
            stop_timeout: default_stop_timeout(),
            term_timeout: default_term_timeout(),
            ready_pattern: None,
            listen_ports: Vec::new(),
            start_timeout: default_start_timeout(),
            crash_patterns: CrashPatterns::default(),
            quiesce: None,
            mods_dir: default_mods_dir(),
            autostart: false,
            variables: Vec::new(),
            config_files: Vec::new(),
            required_files: Vec::new(),
            file_denylist: Vec::new(),
        }
    }
}

/// Console commands around a backup of a running server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiesce {
    /// Sent before copying, in order.
    pub before: Vec<String>,
    /// A console line that means the files are flushed, waited for after `before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_for: Option<Pattern>,
    /// Sent after copying, whatever happened.
    #[serde(default)]
    pub after: Vec<String>,
    /// How long to wait for `wait_for`.
    #[serde(default = "default_quiesce_timeout", with = "duration")]
    pub timeout: Duration,
}

/// The first step of a graceful stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StopMethod {
    /// Write this line to the console (Minecraft: `stop`).
    Command(String),
    /// Send this signal to the game's process group.
    Signal(StopSignal),
}

impl Default for StopMethod {
    fn default() -> Self {
        StopMethod::Command("stop".to_owned())
    }
}

/// The signals a stop may send, written `SIGTERM` (or `TERM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT.
    Int,
    /// SIGTERM.
    Term,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGKILL.
    Kill,
}

const SIGNALS: [(StopSignal, &str); 7] = [
    (StopSignal::Int, "SIGINT"),
    (StopSignal::Term, "SIGTERM"),
    (StopSignal::Hup, "SIGHUP"),
    (StopSignal::Quit, "SIGQUIT"),
    (StopSignal::Usr1, "SIGUSR1"),
    (StopSignal::Usr2, "SIGUSR2"),
    (StopSignal::Kill, "SIGKILL"),
];

impl StopSignal {
    /// Its name (`SIGTERM`).
    pub fn name(self) -> &'static str {
        SIGNALS.iter().find(|(signal, _)| *signal == self).map_or("SIGTERM", |(_, name)| name)
    }
}

impl Serialize for StopSignal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for StopSignal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let name = format!("SIG{}", text.trim_start_matches("SIG"));
        SIGNALS.iter().find(|(_, known)| *known == name).map(|(signal, _)| *signal).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown stop signal {text:?} (use SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, \
                 SIGUSR2 or SIGKILL)"
            ))
        })
    }
}

/// Extra patterns per classification; a line matching one classifies the crash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashPatterns {
    /// Lines that mean the process ran out of memory.
    #[serde(default)]
    pub oom: Vec<Pattern>,
    /// Lines that mean a class, library or required mod is missing.
    #[serde(default)]
    pub missing_dependency: Vec<Pattern>,
    /// Lines that blame a mod or plugin.
    #[serde(default)]
    pub mod_or_plugin_error: Vec<Pattern>,
}

/// A regular expression, checked when it is read and written back as its source.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl Pattern {
    /// Compiles a pattern, or says why it is not one.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        regex::Regex::new(source).map(Pattern)
    }
}

impl std::ops::Deref for Pattern {
    type Target = regex::Regex;
    fn deref(&self) -> &regex::Regex {
        &self.0
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Pattern::new(&text).map_err(serde::de::Error::custom)
    }
}

/// A development container: provisioned before its main process (a shell) starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSection {
    /// The artifact catalog (`.../devcontainer/_catalog.json`).
    pub catalog_url: String,
    /// The runtime to install (`node`); none for a bare container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Its version; the catalog's newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Install and run code-server.
    #[serde(default)]
    pub code_server: bool,
    /// code-server's version; the catalog's newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_server_version: Option<String>,
    /// code-server's port (the control plane's proxy is the only door).
    #[serde(default = "default_code_server_port")]
    pub code_server_port: u16,
    /// The address code-server listens on: loopback, unless the agent runs in a container
    /// whose published port is the proxy's way in (then every interface of the container).
    #[serde(default = "default_code_server_host")]
    pub code_server_host: String,
    /// The user shells and code-server run as, when the agent runs as root in a container.
    #[serde(default = "default_dev_user")]
    pub user: String,
    /// The workspace, relative to the agent's root.
    #[serde(default = "default_workspace")]
    pub workspace: PathBuf,
    /// Where runtimes (`runtimes/`) and code-server (`services/`) are installed, relative to
    /// the agent's root: somewhere the agent may write.
    #[serde(default = "default_packages_dir")]
    pub packages_dir: PathBuf,
}

impl DevSection {
    /// A bare dev container installing from `catalog_url`, every other setting at its default.
    pub fn new(catalog_url: String) -> DevSection {
        DevSection {
            catalog_url,
            runtime: None,
            version: None,
            code_server: false,
            code_server_version: None,
            code_server_port: default_code_server_port(),
            code_server_host: default_code_server_host(),
            user: default_dev_user(),
            workspace: default_workspace(),
            packages_dir: default_packages_dir(),
        }
    }
}

fn default_working_dir() -> PathBuf {
    PathBuf::from("/opt/zlh/server")
}
fn default_stop_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_start_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_term_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_mods_dir() -> PathBuf {
    PathBuf::from("mods")
}
fn default_quiesce_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_code_server_port() -> u16 {
    6000
}
fn default_code_server_host() -> String {
    "127.0.0.1".into()
}
fn default_dev_user() -> String {
    "dev".into()
}
fn default_packages_dir() -> PathBuf {
    PathBuf::from("/opt/zlh")
}
fn default_workspace() -> PathBuf {
    PathBuf::from("/home/dev/workspace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_survives_the_trip_through_toml() {
        let text = r#"
            argv = ["java", "-jar", "server.jar"]
            ready_pattern = 'Done \('
            stop = { signal = "TERM" }
            stop_timeout = "1m 30s"
            quiesce = { before = ["save-off"], wait_for = "Saved", timeout = "5s" }
            crash_patterns = { oom = ["OutOfMemory"] }
        "#;
        let game: GameSection = toml::from_str(text).expect("valid");
        let again: GameSection = toml::from_str(&toml::to_string(&game).expect("serializes")).expect("valid");
        assert_eq!(again.argv, game.argv);
        assert_eq!(again.stop, StopMethod::Signal(StopSignal::Term));
        assert_eq!(again.stop_timeout, Duration::from_secs(90));
        assert!(again.ready_pattern.expect("pattern").is_match("Done (3s)!"));
        assert!(again.crash_patterns.oom[0].is_match("java.lang.OutOfMemoryError"));
        assert_eq!(again.quiesce.expect("quiesce").timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_sections_say_why() {
        let bad_signal = toml::from_str::<GameSection>("argv = [\"x\"]\nstop = { signal = \"SIGWHAT\" }");
        assert!(bad_signal.expect_err("refused").to_string().contains("unknown stop signal"));
        let bad_pattern = toml::from_str::<GameSection>("argv = [\"x\"]\nready_pattern = \"Done (\"");
        assert!(bad_pattern.expect_err("refused").to_string().contains("regex"));
    }
}

/// A port the game listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenPort {
    /// The port number.
    pub port: u16,
    /// TCP, UDP or both.
    pub protocol: crate::api::PortProtocol,
}

/// The server's disk limit, as the driver set it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSection {
    /// Bytes the server may keep (its files, backups and the agent's state).
    pub limit_bytes: u64,
    /// Who stops a write past it.
    pub enforced_by: DiskEnforcement,
    /// Whether the server's data is a filesystem of its own (not a share of a bigger one): then
    /// flushing that filesystem flushes only the server's writes.
    #[serde(default)]
    pub own_filesystem: bool,
}

/// Who stops a write past a server's disk limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DiskEnforcement {
    /// The kernel: the server's data is a filesystem of that size, and a write past it fails
    /// with ENOSPC whoever makes it.
    Kernel,
    /// The agent: it measures the data's size and refuses its own writes (uploads, extracts,
    /// restores, backups) past the limit; the game itself can outrun it between measurements.
    Measured,
}
