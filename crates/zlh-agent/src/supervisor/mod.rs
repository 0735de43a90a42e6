//! Game supervision: one actor task owns the server's lifecycle; everyone else holds a
//! [`Supervisor`] handle.
//!
//! Power actions are messages answered at once from the actor's current state, so there is
//! no lock to get stuck: a second action while one runs gets [`PowerError::InProgress`] with
//! the state, and a stop is driven by the actor's own timers (stop command → SIGTERM →
//! SIGKILL), whatever happens to the request that asked for it.

mod actor;
pub(crate) mod classify;
mod output;
mod store;
mod typed_line;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use zlh_proto::agent::{CrashRecord, GameState};

use crate::config::{AgentConfig, GameSection};
use crate::console::Console;

/// How a run's process starts: where, with which environment, as whom.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Working directory.
    pub cwd: PathBuf,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// User and group to run as, when the agent switches users.
    pub ids: Option<(u32, u32)>,
}

/// Why a run could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// Files the template needs are not there (the owner uploads them).
    MissingFiles(Vec<String>),
    /// Anything else (a config file that cannot be edited).
    Failed(String),
}

/// Decides each run's [`Launch`]: game servers run in the server directory with a clean
/// environment; dev containers run a shell in the workspace as the dev user.
pub trait LaunchPlan: Send + Sync + std::fmt::Debug {
    /// Prepares the next run of `game` and says how it starts.
    fn plan(&self, game: &GameSection) -> Result<Launch, LaunchError>;
}

/// A game server's launch.
#[derive(Debug)]
pub struct GameLaunch {
    server_root: PathBuf,
    variables: Arc<crate::variables::Variables>,
}

impl GameLaunch {
    /// Runs in the configured working directory, with the owner's `variables`.
    pub fn new(config: &AgentConfig, variables: Arc<crate::variables::Variables>) -> GameLaunch {
        GameLaunch { server_root: config.server_root(), variables }
    }

    fn missing_files(&self, game: &GameSection) -> Vec<String> {
        let Ok(dir) = cap_std::fs::Dir::open_ambient_dir(&self.server_root, cap_std::ambient_authority())
        else {
            return game.required_files.clone();
        };
        let present = |file: &String| crate::files::clean(file).is_ok_and(|path| dir.exists(path));
        game.required_files.iter().filter(|file| !present(file)).cloned().collect()
    }
}

impl LaunchPlan for GameLaunch {
    /// Checks the required files are there, edits the config files, and runs with a clean
    /// base (never the agent's own environment, which holds its secret) plus the template's
    /// environment with the owner's values.
    fn plan(&self, game: &GameSection) -> Result<Launch, LaunchError> {
        std::fs::create_dir_all(&self.server_root)
            .map_err(|e| LaunchError::Failed(format!("cannot create the working directory: {e}")))?;
        let missing = self.missing_files(game);
        if !missing.is_empty() {
            return Err(LaunchError::MissingFiles(missing));
        }
        let variables = self.variables.environment(game);
        crate::config_files::apply(&self.server_root, &game.config_files, &variables)
            .map_err(LaunchError::Failed)?;
        let mut env: Vec<(String, String)> = ["PATH", "HOME", "LANG", "USER", "LOGNAME"]
            .iter()
            .filter_map(|key| std::env::var(key).ok().map(|value| (key.to_string(), value)))
            .collect();
        env.push(("TERM".into(), "xterm-256color".into()));
        env.extend(variables);
        Ok(Launch { cwd: self.server_root.clone(), env, ids: None })
    }
}

/// What the supervisor publishes after every change.
#[derive(Debug, Clone)]
pub struct SupervisorStatus {
    /// Lifecycle state.
    pub state: GameState,
    /// Pid of the game process while one is attached.
    pub pid: Option<u32>,
    /// When the current process started (ms since the epoch).
    pub started_at_ms: Option<u64>,
    /// When it printed its ready pattern (ms since the epoch).
    pub ready_at_ms: Option<u64>,
    /// Crashes in a row.
    pub consecutive_crashes: u32,
    /// When the automatic restart is due (ms since the epoch).
    pub next_restart_at_ms: Option<u64>,
    /// Crash history, oldest first.
    pub crashes: Arc<[CrashRecord]>,
    /// The last failure that is not a crash.
    pub last_error: Option<String>,
}

/// Why a power action or console command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PowerError {
    /// Start on a server that is starting or running.
    #[error("the server is already {0}")]
    AlreadyRunning(GameState),
    /// Another power action has not finished.
    #[error("another power action is in progress: the server is {0}")]
    InProgress(GameState),
    /// A console command for a server without a process.
    #[error("the server is not running: it is {0}")]
    NotRunning(GameState),
    /// The process could not be started.
    #[error("the server could not be started: {0}")]
    StartFailed(String),
    /// Files the template needs are not there yet.
    #[error("upload these files before starting the server: {}", .0.join(", "))]
    MissingFiles(Vec<String>),
    /// The agent is stopping.
    #[error("the agent is shutting down")]
    ShuttingDown,
}

/// What happens to the game when the agent stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// The container is stopping: stop the game gracefully first.
    StopServer,
    /// The agent is being upgraded or restarted: leave the game running for the next agent.
    LeaveRunning,
}

type Reply<T> = oneshot::Sender<Result<T, PowerError>>;

#[derive(Debug)]
enum Request {
    Start(Reply<GameState>),
    Stop(Reply<GameState>),
    Restart(Reply<GameState>),
    Kill(Reply<GameState>),
    Command(String, Reply<()>),
    Input(Vec<u8>),
    Resize { cols: u16, rows: u16 },
    Provisioned(Option<String>),
    Shutdown(ShutdownMode, oneshot::Sender<()>),
}

/// A handle to the supervisor actor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<SupervisorStatus>,
    console: Arc<Console>,
}

impl Supervisor {
    /// Loads the persisted state, reattaches to a process that survived the last agent (or
    /// starts the server if it was meant to run and is gone), then starts the actor. With
    /// `provisioning`, nothing starts until [`Supervisor::provisioned`] says it succeeded.
    pub async fn launch(
        config: Arc<AgentConfig>,
        holder_exe: PathBuf,
        plan: Arc<dyn LaunchPlan>,
        provisioning: bool,
    ) -> std::io::Result<Supervisor> {
        let (requests, inbox) = mpsc::channel(1024);
        let mut actor = actor::Actor::new(config, holder_exe, plan, provisioning)?;
        actor.recover().await;
        let supervisor = Supervisor { requests, status: actor.subscribe(), console: actor.console() };
        tokio::spawn(actor.run(inbox));
        Ok(supervisor)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, PowerError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(make(reply)).await.map_err(|_| PowerError::ShuttingDown)?;
        answer.await.map_err(|_| PowerError::ShuttingDown)?
    }

    /// Starts the server. Answers once the process runs (state `starting` or `running`).
    pub async fn start(&self) -> Result<GameState, PowerError> {
        self.ask(Request::Start).await
    }

    /// Begins a graceful stop. Answers at once with `stopping` (or `stopped`).
    pub async fn stop(&self) -> Result<GameState, PowerError> {
        self.ask(Request::Stop).await
    }

    /// Stops (gracefully) and starts again.
    pub async fn restart(&self) -> Result<GameState, PowerError> {
        self.ask(Request::Restart).await
    }

    /// Kills the game at once (SIGKILL to its process group); it ends `stopped`.
    pub async fn kill(&self) -> Result<GameState, PowerError> {
        self.ask(Request::Kill).await
    }

    /// Sends one line to the console. The stop command itself counts as a stop.
    pub async fn console_command(&self, line: String) -> Result<(), PowerError> {
        self.ask(|reply| Request::Command(line, reply)).await
    }

    /// Raw keyboard input from a console viewer; dropped when nothing runs.
    pub fn input(&self, bytes: Vec<u8>) {
        let _ = self.requests.try_send(Request::Input(bytes));
    }

    /// Reports the end of the container's provisioning: the server may start now (if it is
    /// meant to run), or, with the reason it failed, it goes to `error`.
    pub async fn provisioned(&self, failure: Option<String>) {
        let _ = self.requests.send(Request::Provisioned(failure)).await;
    }

    /// A viewer's terminal size.
    pub fn resize(&self, cols: u16, rows: u16) {
        let _ = self.requests.try_send(Request::Resize { cols, rows });
    }

    /// The latest status.
    pub fn status(&self) -> SupervisorStatus {
        self.status.borrow().clone()
    }

    /// A receiver that wakes on every status change.
    pub fn watch_status(&self) -> watch::Receiver<SupervisorStatus> {
        self.status.clone()
    }

    /// The console scrollback.
    pub fn console(&self) -> &Arc<Console> {
        &self.console
    }

    /// Stops the server and waits (up to `timeout`) until it has stopped.
    pub async fn stop_and_wait(&self, timeout: std::time::Duration) -> Result<(), PowerError> {
        match self.stop().await {
            Ok(_) | Err(PowerError::InProgress(GameState::Stopping)) => {}
            Err(e) => return Err(e),
        }
        let mut status = self.watch_status();
        let stopped = async {
            loop {
                if !matches!(
                    status.borrow_and_update().state,
                    GameState::Stopping | GameState::Starting | GameState::Running
                ) {
                    return;
                }
                if status.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, stopped).await.map_err(|_| PowerError::InProgress(GameState::Stopping))
    }

    /// Stops the actor, first stopping the game when `mode` says so; returns when done.
    pub async fn shutdown(&self, mode: ShutdownMode) {
        let (done, finished) = oneshot::channel();
        if self.requests.send(Request::Shutdown(mode, done)).await.is_ok() {
            let _ = finished.await;
        }
    }
}
