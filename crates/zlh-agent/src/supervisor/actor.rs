//! The supervisor actor: the state machine of one game server.
//!
//! ```text
//!  stopped ──start──▶ starting ──ready pattern──▶ running
//!     ▲                  │  ╲                        │
//!     │               stop  exit (crash)           stop / exit (crash)
//!     │                  ▼    ╲                      ▼
//!     └──── exit ──── stopping  ▶ crashed ──backoff──▶ starting
//!                                  │ (too many in a row)
//!                                  ▼
//!                                error ──start──▶ starting
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zlh_proto::agent::{CrashRecord, GameState};

use super::classify::{Classifier, ExitFacts, console_lines};
use super::output::{ProcessEvent, ReadyWatch, pump};
use super::store::{Desired, Persisted, PersistedProcess, StateStore};
use super::typed_line::TypedLine;
use super::{Launch, LaunchError, LaunchPlan, PowerError, Request, ShutdownMode, SupervisorStatus};
use crate::clock::{format_ms, instant_at_ms, now_ms};
use crate::config::{AgentConfig, StopMethod};
use crate::console::Console;
use crate::holder::HolderSpec;
use crate::holder::client::{HolderConnection, HolderPaths, attach, start};
use crate::holder::protocol::{ExitInfo, ToHolder};
use crate::{cgroup, procfs};
use zlh_proto::agent_config::StopSignal;

/// After SIGKILL, how long to wait for the holder to report the exit before giving up on it.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Terminal size of a console nobody has resized yet.
const DEFAULT_TERMINAL: (u16, u16) = (120, 40);

/// The next thing the power timer does.
/// How often a game past its ready line is checked for listening on its ports.
const PORTS_CHECK_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The backoff after a crash is over: start again.
    Restart,
    /// The stop command was ignored: send SIGTERM.
    Terminate,
    /// SIGTERM was ignored: send SIGKILL.
    Kill,
    /// Even SIGKILL brought no exit report: forget the process.
    GiveUp,
}

/// The attached process of the current run.
#[derive(Debug)]
struct Live {
    run: u64,
    game_pid: u32,
    to_holder: mpsc::Sender<ToHolder>,
    pump: tokio::task::JoinHandle<()>,
    /// The holder process, when this agent started it; dropping it lets tokio reap it.
    _holder: Option<tokio::process::Child>,
}

#[derive(Debug)]
pub(super) struct Actor {
    config: Arc<AgentConfig>,
    holder_exe: PathBuf,
    plan: Arc<dyn LaunchPlan>,
    /// The container is still being provisioned: nothing may start.
    provisioning: bool,
    paths: HolderPaths,
    console: Arc<Console>,
    classifier: Classifier,
    store: StateStore,
    /// The persisted part of the state; saved after every change that matters.
    data: Persisted,
    state: GameState,
    live: Option<Live>,
    /// Number of the current run; events of older runs are ignored.
    run: u64,
    power_timer: Option<(Instant, Timer)>,
    /// When the current run has lasted long enough to reset the crash count.
    stable_at: Option<Instant>,
    /// When a start still not ready is given up on (its ready line never came).
    start_deadline: Option<Instant>,
    /// The current run is being stopped because its start took too long: its exit is a crash.
    start_timed_out: bool,
    /// When to look again whether a game past its ready line listens on its ports.
    ports_check: Option<Instant>,
    restart_after_stop: bool,
    next_restart_at_ms: Option<u64>,
    last_error: Option<String>,
    terminal_size: (u16, u16),
    typed: TypedLine,
    crashes: Arc<[CrashRecord]>,
    shutdown: Option<(ShutdownMode, oneshot::Sender<()>)>,
    events_tx: mpsc::Sender<ProcessEvent>,
    events: mpsc::Receiver<ProcessEvent>,
    status: watch::Sender<SupervisorStatus>,
}

impl Actor {
    pub(super) fn new(
        config: Arc<AgentConfig>,
        holder_exe: PathBuf,
        plan: Arc<dyn LaunchPlan>,
        provisioning: bool,
    ) -> std::io::Result<Actor> {
        let state_dir = config.state_path();
        let run_dir = state_dir.join("run");
        std::fs::create_dir_all(&run_dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let store = StateStore::new(&state_dir);
        let data = store.load().unwrap_or_else(|| Persisted {
            desired: if config.game.autostart { Desired::Running } else { Desired::Stopped },
            ..Persisted::default()
        });
        let console_start = data.process.as_ref().map_or(data.console_end, |p| p.console_base);
        let console = Console::new(config.console.scrollback_bytes, console_start);
        let (events_tx, events) = mpsc::channel(64);
        let crashes: Arc<[CrashRecord]> = data.crashes.clone().into();
        let status = watch::channel(SupervisorStatus {
            state: GameState::Stopped,
            pid: None,
            started_at_ms: None,
            ready_at_ms: None,
            consecutive_crashes: data.consecutive_crashes,
            next_restart_at_ms: None,
            crashes: Arc::clone(&crashes),
            last_error: None,
        })
        .0;
        Ok(Actor {
            classifier: Classifier::new(&config.game.crash_patterns),
            paths: HolderPaths::in_dir(&run_dir),
            config,
            holder_exe,
            plan,
            provisioning,
            console,
            store,
            data,
            state: GameState::Stopped,
            live: None,
            run: 0,
            power_timer: None,
            stable_at: None,
            start_deadline: None,
            start_timed_out: false,
            ports_check: None,
            restart_after_stop: false,
            next_restart_at_ms: None,
            last_error: None,
            terminal_size: DEFAULT_TERMINAL,
            typed: TypedLine::default(),
            crashes,
            shutdown: None,
            events_tx,
            events,
            status,
        })
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<SupervisorStatus> {
        self.status.subscribe()
    }

    pub(super) fn console(&self) -> Arc<Console> {
        Arc::clone(&self.console)
    }

    /// Finds the process the last agent left running, or starts the server if it was meant
    /// to run and its process is gone (the container restarted).
    pub(super) async fn recover(&mut self) {
        if let Some(process) = self.data.process.clone() {
            match attach(&self.paths.socket, 0).await {
                Ok(connection) => {
                    tracing::info!(game_pid = process.game_pid, "reattached to the running server");
                    self.attach(connection, &process, None);
                    if self.data.desired == Desired::Stopped {
                        // The last agent died in the middle of a stop: finish it.
                        self.begin_stop(true);
                    }
                    self.publish();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, game_pid = process.game_pid, "the server's process holder is gone");
                    kill_if_same(&process);
                    self.data.process = None;
                    self.data.console_end = self.console.bounds().1;
                }
            }
        }
        if self.provisioning {
            self.state = GameState::Installing;
        } else if self.data.gave_up {
            self.state = GameState::Error;
        } else if self.data.desired == Desired::Running {
            tracing::info!("starting the server: it is meant to run and no process is left");
            let _ = self.launch().await;
        }
        self.save().await;
        self.publish();
    }

    pub(super) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        while !self.shutdown_complete() {
            let power_deadline = self.power_timer.map(|(at, _)| at);
            let stable_deadline = self.stable_at;
            let start_deadline = self.start_deadline;
            let ports_check = self.ports_check;
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    // Every handle is gone: nobody can ask anything any more.
                    None => break,
                },
                Some(event) = self.events.recv() => self.on_event(event).await,
                _ = sleep_until(power_deadline), if power_deadline.is_some() => self.on_power_timer().await,
                _ = sleep_until(stable_deadline), if stable_deadline.is_some() => self.on_stable().await,
                _ = sleep_until(start_deadline), if start_deadline.is_some() => self.on_start_timeout(),
                _ = sleep_until(ports_check), if ports_check.is_some() => self.on_ports_check().await,
            }
        }
        if let Some(live) = self.live.take() {
            live.pump.abort();
        }
        if let Some((_, done)) = self.shutdown.take() {
            let _ = done.send(());
        }
    }

    fn shutdown_complete(&self) -> bool {
        match &self.shutdown {
            Some((ShutdownMode::LeaveRunning, _)) => true,
            Some((ShutdownMode::StopServer, _)) => self.live.is_none(),
            None => false,
        }
    }

    async fn handle(&mut self, request: Request) {
        if self.shutdown.is_some() {
            // Power requests during shutdown are refused; dropping a reply says so.
            if let Request::Shutdown(_, done) = request {
                let _ = done.send(());
            }
            return;
        }
        match request {
            Request::Start(reply) => {
                let result = self.start().await;
                let _ = reply.send(result);
            }
            Request::Stop(reply) => {
                let result = self.stop().await;
                let _ = reply.send(result);
            }
            Request::Restart(reply) => {
                let result = self.restart().await;
                let _ = reply.send(result);
            }
            Request::Kill(reply) => {
                let result = self.kill().await;
                let _ = reply.send(result);
            }
            Request::Command(line, reply) => {
                let result = self.console_command(line).await;
                let _ = reply.send(result);
            }
            Request::Input(bytes) => return self.input(bytes).await,
            Request::Resize { cols, rows } => {
                self.terminal_size = (cols, rows);
                self.send(ToHolder::Resize { cols, rows });
                return;
            }
            Request::Provisioned(outcome) => self.on_provisioned(outcome).await,
            Request::Shutdown(mode, done) => {
                tracing::info!(?mode, "supervisor shutting down");
                self.shutdown = Some((mode, done));
                if mode == ShutdownMode::StopServer {
                    self.cancel_restart();
                    self.restart_after_stop = false;
                    if self.live.is_some() && self.state != GameState::Stopping {
                        self.begin_stop(true);
                    }
                }
            }
        }
        self.publish();
    }

    async fn on_provisioned(&mut self, failure: Option<String>) {
        self.provisioning = false;
        if self.state != GameState::Installing {
            return;
        }
        match failure {
            None => {
                self.state = GameState::Stopped;
                if self.data.desired == Desired::Running && !self.data.gave_up {
                    let _ = self.launch().await;
                }
            }
            Some(message) => {
                tracing::error!(error = %message, "provisioning failed");
                self.state = GameState::Error;
                self.last_error = Some(format!("provisioning failed: {message}"));
            }
        }
    }

    async fn start(&mut self) -> Result<GameState, PowerError> {
        match self.state {
            GameState::Starting | GameState::Running => {
                return Err(PowerError::AlreadyRunning(self.state));
            }
            GameState::Stopping | GameState::Installing => {
                return Err(PowerError::InProgress(self.state));
            }
            GameState::Stopped | GameState::Crashed | GameState::Error => {}
        }
        if self.state == GameState::Error {
            self.data.consecutive_crashes = 0;
        }
        self.data.desired = Desired::Running;
        self.data.gave_up = false;
        self.cancel_restart();
        self.launch().await?;
        Ok(self.state)
    }

    async fn stop(&mut self) -> Result<GameState, PowerError> {
        match self.state {
            GameState::Stopping => Err(PowerError::InProgress(self.state)),
            GameState::Stopped => Ok(GameState::Stopped),
            GameState::Crashed | GameState::Error | GameState::Installing => {
                self.cancel_restart();
                self.state = GameState::Stopped;
                self.data.desired = Desired::Stopped;
                self.data.gave_up = false;
                self.save().await;
                Ok(GameState::Stopped)
            }
            GameState::Starting | GameState::Running => {
                self.data.desired = Desired::Stopped;
                self.restart_after_stop = false;
                self.begin_stop(true);
                self.save().await;
                Ok(GameState::Stopping)
            }
        }
    }

    async fn restart(&mut self) -> Result<GameState, PowerError> {
        match self.state {
            GameState::Stopping | GameState::Installing => Err(PowerError::InProgress(self.state)),
            GameState::Starting | GameState::Running => {
                self.data.desired = Desired::Running;
                self.restart_after_stop = true;
                self.begin_stop(true);
                self.save().await;
                Ok(GameState::Stopping)
            }
            GameState::Stopped | GameState::Crashed | GameState::Error => self.start().await,
        }
    }

    /// SIGKILL now, for a game that takes too long to stop: it ends stopped, not crashed.
    async fn kill(&mut self) -> Result<GameState, PowerError> {
        if self.live.is_none()
            || !matches!(self.state, GameState::Starting | GameState::Running | GameState::Stopping)
        {
            return Err(PowerError::NotRunning(self.state));
        }
        tracing::warn!("kill requested");
        self.data.desired = Desired::Stopped;
        self.restart_after_stop = false;
        self.state = GameState::Stopping;
        self.power_timer = Some((Instant::now(), Timer::Kill));
        self.save().await;
        Ok(GameState::Stopping)
    }

    async fn console_command(&mut self, line: String) -> Result<(), PowerError> {
        if self.live.is_none() || !matches!(self.state, GameState::Starting | GameState::Running) {
            return Err(PowerError::NotRunning(self.state));
        }
        if self.is_stop_command(&line) {
            return self.stop().await.map(|_| ());
        }
        self.send(ToHolder::Input(format!("{line}\n").into_bytes()));
        Ok(())
    }

    async fn input(&mut self, bytes: Vec<u8>) {
        if self.live.is_none() {
            return;
        }
        let typed_stop = self.typed.feed(&bytes).iter().any(|line| self.is_stop_command(line));
        self.send(ToHolder::Input(bytes));
        if typed_stop && matches!(self.state, GameState::Starting | GameState::Running) {
            tracing::info!("stop command typed in the console");
            self.data.desired = Desired::Stopped;
            self.restart_after_stop = false;
            self.begin_stop(false);
            self.save().await;
            self.publish();
        }
    }

    fn is_stop_command(&self, line: &str) -> bool {
        matches!(&self.config.game.stop, StopMethod::Command(stop) if line.trim() == stop.trim())
    }

    /// Starts a new run. On failure the server goes to `error` with the reason.
    async fn launch(&mut self) -> Result<(), PowerError> {
        let launch = match self.plan.plan(&self.config.game) {
            Ok(launch) => launch,
            Err(LaunchError::MissingFiles(missing)) => {
                // Nothing ran: the server stays stopped until its owner puts the files there.
                let refusal = PowerError::MissingFiles(missing);
                tracing::warn!(error = %refusal, "the server cannot start yet");
                self.state = GameState::Stopped;
                self.data.desired = Desired::Stopped;
                self.last_error = Some(refusal.to_string());
                self.save().await;
                self.publish();
                return Err(refusal);
            }
            Err(LaunchError::Failed(message)) => return self.launch_failed(message).await,
        };
        self.state = GameState::Starting;
        self.last_error = None;
        self.publish();
        match self.spawn_process(launch).await {
            Ok(()) => Ok(()),
            Err(message) => self.launch_failed(message).await,
        }
    }

    /// A run that could not start: the server goes to `error` with the reason.
    async fn launch_failed(&mut self, message: String) -> Result<(), PowerError> {
        tracing::error!(error = %message, "the server could not be started");
        self.state = GameState::Error;
        self.data.gave_up = true;
        self.last_error = Some(message.clone());
        self.save().await;
        Err(PowerError::StartFailed(message))
    }

    async fn spawn_process(&mut self, launch: Launch) -> Result<(), String> {
        std::fs::create_dir_all(&launch.cwd)
            .map_err(|e| format!("cannot create the working directory: {e}"))?;
        let (cols, rows) = self.terminal_size;
        let spec = HolderSpec {
            argv: self.config.game.argv.clone(),
            cwd: launch.cwd,
            env: launch.env,
            ids: launch.ids,
            socket: self.paths.socket.clone(),
            scrollback_bytes: self.config.console.scrollback_bytes,
            cols,
            rows,
        };
        let started = start(&self.holder_exe, &spec, &self.paths.spec, &self.paths.log)
            .await
            .map_err(|e| e.to_string())?;
        let connection = attach(&self.paths.socket, 0).await.map_err(|e| e.to_string())?;
        let oom_counter = cgroup::oom_counter_for(started.game_pid);
        let process = PersistedProcess {
            game_pid: started.game_pid,
            game_start_ticks: procfs::start_ticks(started.game_pid),
            started_at_ms: connection.hello.started_at_ms,
            console_base: self.console.bounds().1,
            ready_at_ms: None,
            oom_kills_at_start: oom_counter.as_deref().and_then(cgroup::read_oom_kills),
            oom_counter,
        };
        tracing::info!(game_pid = started.game_pid, "server process started");
        self.attach(connection, &process, Some(started.child));
        self.data.process = Some(process);
        self.save().await;
        Ok(())
    }

    /// Wires a holder connection to the console and the event queue.
    fn attach(
        &mut self,
        connection: HolderConnection,
        process: &PersistedProcess,
        holder: Option<tokio::process::Child>,
    ) {
        self.run += 1;
        let (to_holder, mut outgoing) = mpsc::channel::<ToHolder>(256);
        let mut writer = connection.writer;
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if message.write(&mut writer).await.is_err() {
                    break;
                }
            }
        });
        let ready_seen = process.ready_at_ms.is_some();
        let ready = self
            .config
            .game
            .ready_pattern
            .as_ref()
            .filter(|_| !ready_seen)
            .map(|pattern| ReadyWatch::new((**pattern).clone(), Arc::new(AtomicBool::new(true))));
        self.state = if ready.is_some() { GameState::Starting } else { GameState::Running };
        self.start_timed_out = false;
        self.start_deadline = ready.is_some().then(|| {
            instant_at_ms(process.started_at_ms + self.config.game.start_timeout.as_millis() as u64)
        });
        let pump = tokio::spawn(pump(
            connection.reader,
            Arc::clone(&self.console),
            process.console_base,
            ready,
            self.run,
            self.events_tx.clone(),
        ));
        let stable_at_ms = process.started_at_ms + self.config.recovery.reset_after.as_millis() as u64;
        self.stable_at = Some(instant_at_ms(stable_at_ms));
        self.live = Some(Live {
            run: self.run,
            game_pid: connection.hello.game_pid,
            to_holder,
            pump,
            _holder: holder,
        });
    }

    fn send(&self, message: ToHolder) {
        if let Some(live) = &self.live
            && live.to_holder.try_send(message).is_err()
        {
            tracing::warn!("holder connection is congested; request dropped");
        }
    }

    fn begin_stop(&mut self, send_stop: bool) {
        self.state = GameState::Stopping;
        if send_stop {
            match self.config.game.stop.clone() {
                StopMethod::Command(line) => self.send(ToHolder::Input(format!("{line}\n").into_bytes())),
                StopMethod::Signal(signal) => self.send(ToHolder::Signal(signal_number(signal))),
            }
        }
        self.power_timer = Some((Instant::now() + self.config.game.stop_timeout, Timer::Terminate));
    }

    fn cancel_restart(&mut self) {
        if matches!(self.power_timer, Some((_, Timer::Restart))) {
            self.power_timer = None;
        }
        self.next_restart_at_ms = None;
    }

    async fn on_power_timer(&mut self) {
        let Some((_, timer)) = self.power_timer.take() else {
            return;
        };
        match timer {
            Timer::Restart => {
                self.next_restart_at_ms = None;
                if self.state == GameState::Crashed {
                    tracing::info!("restarting the server after its crash backoff");
                    let _ = self.launch().await;
                }
            }
            Timer::Terminate => {
                tracing::warn!("the server ignored its stop command; sending SIGTERM");
                self.send(ToHolder::Signal(Signal::TERM.as_raw()));
                self.power_timer = Some((Instant::now() + self.config.game.term_timeout, Timer::Kill));
            }
            Timer::Kill => {
                tracing::warn!("the server ignored SIGTERM; sending SIGKILL");
                self.send(ToHolder::Signal(Signal::KILL.as_raw()));
                // Also directly, in case the holder itself is stuck.
                if let Some(pid) = self.live.as_ref().and_then(|live| Pid::from_raw(live.game_pid as i32)) {
                    let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                }
                self.power_timer = Some((Instant::now() + KILL_GRACE, Timer::GiveUp));
            }
            Timer::GiveUp => {
                tracing::error!("no exit was reported even after SIGKILL; forgetting the process");
                if let Some(live) = self.live.take() {
                    live.pump.abort();
                }
                self.data.process = None;
                self.data.console_end = self.console.bounds().1;
                self.state = GameState::Stopped;
                self.last_error = Some("the process did not report its exit after SIGKILL".into());
                self.save().await;
            }
        }
        self.publish();
    }

    /// The ready line did not come in time: the run is stopped (SIGTERM, then SIGKILL) and its
    /// exit recorded as a `start_timeout` crash.
    fn on_start_timeout(&mut self) {
        self.start_deadline = None;
        if self.state != GameState::Starting || self.live.is_none() {
            return;
        }
        tracing::warn!(
            start_timeout = %humantime::format_duration(self.config.game.start_timeout),
            "the server did not become ready in time; stopping it"
        );
        self.start_timed_out = true;
        self.state = GameState::Stopping;
        self.send(ToHolder::Signal(Signal::TERM.as_raw()));
        self.power_timer = Some((Instant::now() + self.config.game.term_timeout, Timer::Kill));
        self.publish();
    }

    async fn on_stable(&mut self) {
        self.stable_at = None;
        if self.live.is_some() && self.data.consecutive_crashes != 0 {
            tracing::info!("the server ran long enough: crash count reset");
            self.data.consecutive_crashes = 0;
            self.save().await;
            self.publish();
        }
    }

    async fn on_event(&mut self, event: ProcessEvent) {
        let current = self.live.as_ref().map(|live| live.run);
        match event {
            ProcessEvent::Ready { run } if Some(run) == current => {
                if self.state == GameState::Starting && !self.ports_listening() {
                    tracing::info!("the ready line came; waiting for the game to listen on its ports");
                    self.ports_check = Some(Instant::now() + PORTS_CHECK_EVERY);
                    return;
                }
                self.become_ready().await;
            }
            ProcessEvent::Exited { run, exit } if Some(run) == current => self.on_exit(Some(exit)).await,
            ProcessEvent::Lost { run } if Some(run) == current => self.on_exit(None).await,
            _ => return,
        }
        self.publish();
    }

    /// The game printed its ready line and listens on its ports: it runs.
    async fn become_ready(&mut self) {
        self.start_deadline = None;
        self.ports_check = None;
        if self.state == GameState::Starting {
            self.state = GameState::Running;
        }
        let now = now_ms();
        if let Some(process) = &mut self.data.process {
            process.ready_at_ms = Some(now);
            tracing::info!(startup_ms = now.saturating_sub(process.started_at_ms), "server is ready");
        }
        self.save().await;
    }

    /// Whether the game listens on every port it was given.
    fn ports_listening(&self) -> bool {
        self.config.game.listen_ports.iter().all(|p| crate::procfs::listening(p.port, p.protocol))
    }

    /// Checked again while a game that printed its ready line is not listening yet (until it
    /// does, exits, or its start times out).
    async fn on_ports_check(&mut self) {
        self.ports_check = None;
        if self.state != GameState::Starting || self.live.is_none() {
            return;
        }
        if self.ports_listening() {
            self.become_ready().await;
            self.publish();
        } else {
            self.ports_check = Some(Instant::now() + PORTS_CHECK_EVERY);
        }
    }

    /// The process ended: a stop, or a crash. `exit` is `None` when the holder vanished.
    async fn on_exit(&mut self, exit: Option<ExitInfo>) {
        let Some(live) = self.live.take() else { return };
        let Some(process) = self.data.process.take() else {
            return;
        };
        self.stable_at = None;
        self.start_deadline = None;
        self.ports_check = None;
        let timed_out = std::mem::take(&mut self.start_timed_out);
        match &exit {
            Some(_) => {
                let _ = live.to_holder.try_send(ToHolder::Release);
            }
            None => kill_if_same(&process),
        }
        drop(live);
        let exit = exit.unwrap_or(ExitInfo { code: None, signal: None, exited_at_ms: now_ms(), total: 0 });
        self.data.console_end = self.console.bounds().1;
        let was_stopping = self.state == GameState::Stopping && !timed_out;
        if matches!(self.power_timer, Some((_, Timer::Terminate | Timer::Kill | Timer::GiveUp))) {
            self.power_timer = None;
        }
        if was_stopping {
            tracing::info!(exit_code = exit.code, signal = exit.signal, "server stopped");
            self.state = GameState::Stopped;
            if std::mem::take(&mut self.restart_after_stop) && self.shutdown.is_none() {
                self.save().await;
                let _ = self.launch().await;
                return;
            }
        } else {
            self.record_crash(&process, &exit, timed_out);
        }
        self.save().await;
    }

    fn record_crash(&mut self, process: &PersistedProcess, exit: &ExitInfo, timed_out: bool) {
        let policy = &self.config.recovery;
        let uptime_ms = exit.exited_at_ms.saturating_sub(process.started_at_ms);
        let consecutive = if uptime_ms >= policy.reset_after.as_millis() as u64 {
            1
        } else {
            self.data.consecutive_crashes + 1
        };
        self.data.consecutive_crashes = consecutive;
        let kernel_oom_kill = match (&process.oom_counter, process.oom_kills_at_start) {
            (Some(file), Some(before)) => cgroup::read_oom_kills(file).is_some_and(|now| now > before),
            _ => false,
        };
        let lines = console_lines(&self.console.tail_from(process.console_base));
        let facts = ExitFacts { code: exit.code, signal: exit.signal, kernel_oom_kill };
        let (classification, reason) = if timed_out {
            self.classifier.start_timeout(&lines, self.config.game.start_timeout)
        } else {
            self.classifier.classify(&lines, facts)
        };
        let give_up = consecutive >= policy.max_consecutive_crashes || self.shutdown.is_some();
        let restart_delay = (!give_up).then(|| {
            let index = (consecutive as usize - 1).min(policy.backoff.len() - 1);
            policy.backoff[index]
        });
        let tail_start = lines.len().saturating_sub(self.config.console.tail_lines);
        let record = CrashRecord {
            at: format_ms(exit.exited_at_ms),
            exit_code: exit.code,
            signal: exit.signal,
            uptime_ms,
            classification,
            reason,
            log_tail: lines[tail_start..].to_vec(),
            consecutive,
            restart_delay_ms: restart_delay.map(|d| d.as_millis() as u64),
        };
        tracing::warn!(
            ?classification,
            reason = %record.reason,
            exit_code = exit.code,
            signal = exit.signal,
            uptime_ms,
            consecutive,
            restart_delay_ms = record.restart_delay_ms,
            "server crashed"
        );
        self.data.crashes.push(record);
        let excess = self.data.crashes.len().saturating_sub(policy.crash_history);
        self.data.crashes.drain(..excess);
        self.crashes = self.data.crashes.clone().into();
        match restart_delay {
            Some(delay) if self.shutdown.is_none() => {
                self.state = GameState::Crashed;
                self.power_timer = Some((Instant::now() + delay, Timer::Restart));
                self.next_restart_at_ms = Some(now_ms() + delay.as_millis() as u64);
            }
            Some(_) => self.state = GameState::Crashed,
            None => {
                tracing::error!(
                    consecutive,
                    "the server crashed too often in a row; giving up until it is started again"
                );
                self.state = GameState::Error;
                self.data.gave_up = true;
            }
        }
    }

    async fn save(&self) {
        self.store.save(&self.data).await;
    }

    fn publish(&self) {
        let process = self.data.process.as_ref();
        self.status.send_replace(SupervisorStatus {
            state: self.state,
            pid: self.live.as_ref().map(|live| live.game_pid),
            started_at_ms: process.map(|p| p.started_at_ms),
            ready_at_ms: process.and_then(|p| p.ready_at_ms),
            consecutive_crashes: self.data.consecutive_crashes,
            next_restart_at_ms: self.next_restart_at_ms,
            crashes: Arc::clone(&self.crashes),
            last_error: self.last_error.clone(),
        });
    }
}

/// Kills the game of a lost holder, if that pid still is our game (the pid may have been
/// reused since).
fn kill_if_same(process: &PersistedProcess) {
    if procfs::is_same_process(process.game_pid, process.game_start_ticks)
        && let Some(pid) = Pid::from_raw(process.game_pid as i32)
    {
        tracing::warn!(game_pid = process.game_pid, "killing the orphaned game process");
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The number of a configured stop signal.
fn signal_number(signal: StopSignal) -> i32 {
    let signal = match signal {
        StopSignal::Int => Signal::INT,
        StopSignal::Term => Signal::TERM,
        StopSignal::Hup => Signal::HUP,
        StopSignal::Quit => Signal::QUIT,
        StopSignal::Usr1 => Signal::USR1,
        StopSignal::Usr2 => Signal::USR2,
        StopSignal::Kill => Signal::KILL,
    };
    signal.as_raw()
}
