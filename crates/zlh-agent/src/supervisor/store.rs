//! What the supervisor remembers across agent restarts, in one small JSON file.
//!
//! Written whole to a temporary file, fsynced, and renamed over the old one (then the directory
//! is fsynced), so a crash at any moment leaves either the old or the new file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zlh_proto::agent::CrashRecord;

/// Whether the server is meant to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Desired {
    Running,
    #[default]
    Stopped,
}

/// The persisted supervisor state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Persisted {
    /// What the operator or customer asked for last.
    pub(crate) desired: Desired,
    /// The supervisor gave up after too many crashes (`error`) and waits for a start.
    pub(crate) gave_up: bool,
    /// Crashes in a row.
    pub(crate) consecutive_crashes: u32,
    /// Console offset after the last finished process, where the next one continues.
    pub(crate) console_end: u64,
    /// The process that is (or was, when the agent stopped) running.
    pub(crate) process: Option<PersistedProcess>,
    /// Crash history, oldest first.
    pub(crate) crashes: Vec<CrashRecord>,
}

/// Enough about a running process to find it again and judge its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PersistedProcess {
    pub(crate) game_pid: u32,
    /// The kernel's start time of the game process, to tell it from a later process that
    /// reuses its pid.
    pub(crate) game_start_ticks: Option<u64>,
    pub(crate) started_at_ms: u64,
    /// Console offset of the process's first output byte.
    pub(crate) console_base: u64,
    pub(crate) ready_at_ms: Option<u64>,
    /// The memory cgroup's OOM-kill counter file, and its value when the process started.
    pub(crate) oom_counter: Option<PathBuf>,
    pub(crate) oom_kills_at_start: Option<u64>,
}

/// The file the state lives in.
#[derive(Debug, Clone)]
pub(crate) struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub(crate) fn new(state_dir: &Path) -> StateStore {
        StateStore { path: state_dir.join("supervisor.json") }
    }

    /// Loads the state; `None` for a fresh start. A missing file is a fresh start; an
    /// unreadable one is set aside (so nobody loses the evidence) and is a fresh start too.
    pub(crate) fn load(&self) -> Option<Persisted> {
        match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(state) => Some(state),
                Err(e) => {
                    let aside = self.path.with_extension("json.corrupt");
                    tracing::error!(error = %e, aside = %aside.display(), "supervisor state unreadable; starting fresh");
                    let _ = std::fs::rename(&self.path, aside);
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::error!(error = %e, "supervisor state unreadable; starting fresh");
                None
            }
        }
    }

    /// Replaces the state atomically and durably.
    pub(crate) async fn save(&self, state: &Persisted) {
        let path = self.path.clone();
        let bytes = match serde_json::to_vec_pretty(state) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode supervisor state");
                return;
            }
        };
        let written =
            tokio::task::spawn_blocking(move || crate::durable::write_atomically(&path, &bytes)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot save supervisor state"),
            Err(e) => tracing::error!(error = %e, "cannot save supervisor state"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn state_round_trips_and_corruption_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::new(dir.path());
        assert_eq!(store.load(), None);
        let state = Persisted { desired: Desired::Running, consecutive_crashes: 2, ..Persisted::default() };
        store.save(&state).await;
        assert_eq!(store.load(), Some(state));
        std::fs::write(dir.path().join("supervisor.json"), b"{not json").expect("write");
        assert_eq!(store.load(), None);
        assert!(dir.path().join("supervisor.json.corrupt").exists());
    }
}
