//! The holder process itself (`zlh agent-holder --spec FILE`).

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};

use super::protocol::{ExitInfo, FromHolder, HolderHello, ToHolder};
use crate::clock::now_ms;
use crate::console::{Chunk, Console};
use crate::pty;

/// Largest output chunk sent to the agent in one frame.
const CHUNK: usize = 64 * 1024;
/// How long to keep draining the PTY after the game exited, for output its children still
/// write or the kernel still buffers.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// What the agent asks a holder to run. Written to a 0600 file, read once and deleted, because
/// the game's environment may hold secrets of its own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HolderSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The game's whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// User and group to run the game as (the holder runs as the agent's user).
    #[serde(default)]
    pub ids: Option<(u32, u32)>,
    /// Where to listen for the agent.
    pub socket: PathBuf,
    /// Bytes of output to keep for an agent that is away.
    pub scrollback_bytes: usize,
    /// Initial terminal size.
    pub cols: u16,
    /// Initial terminal size.
    pub rows: u16,
}

/// The first line a holder prints on stdout: the game started, or why it did not.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HolderStarted {
    pub(crate) game_pid: Option<u32>,
    pub(crate) error: Option<String>,
}

/// Runs a holder until an agent releases it. Reports the start on stdout (one JSON line).
pub async fn run_holder(spec_path: &Path) -> std::io::Result<()> {
    // A new session: the agent's death, its terminal's hangup or Ctrl-C reach neither the
    // holder nor the game.
    let _ = rustix::process::setsid();
    let started = start_game(spec_path).await;
    let report = match &started {
        Ok(game) => HolderStarted { game_pid: Some(game.pid), error: None },
        Err(e) => HolderStarted { game_pid: None, error: Some(e.to_string()) },
    };
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", serde_json::to_string(&report)?)?;
    stdout.flush()?;
    let game = started?;
    tracing::info!(game_pid = game.pid, "holder started the game");
    ignore_termination_signals()?;
    serve(game).await
}

struct Game {
    pid: u32,
    started_at_ms: u64,
    listener: UnixListener,
    socket: PathBuf,
    master: Arc<AsyncFd<OwnedFd>>,
    console: Arc<Console>,
    child: tokio::process::Child,
}

async fn start_game(spec_path: &Path) -> std::io::Result<Game> {
    let spec: HolderSpec = serde_json::from_slice(&std::fs::read(spec_path)?)?;
    let _ = std::fs::remove_file(spec_path);
    let _ = std::fs::remove_file(&spec.socket);
    let listener = UnixListener::bind(&spec.socket)?;
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"))?;
    let pty = pty::open(spec.cols, spec.rows)?;
    let mut command = tokio::process::Command::new(program);
    command.args(args).current_dir(&spec.cwd).env_clear().envs(spec.env.iter().cloned());
    if let Some((uid, gid)) = spec.ids {
        // std drops supplementary groups too when it changes the uid of a root process.
        command.uid(uid).gid(gid);
    }
    let child = pty::spawn(&mut command, &pty.slave)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {program:?}: {e}")))?;
    drop(pty.slave);
    let pid = child.id().unwrap_or(0);
    Ok(Game {
        pid,
        started_at_ms: now_ms(),
        listener,
        socket: spec.socket,
        master: Arc::new(pty::register(pty.master)?),
        console: Console::new(spec.scrollback_bytes, 0),
        child,
    })
}

/// The holder outlives the agent's graceful shutdown and container stop signals: only a
/// release or SIGKILL ends it, so a game is never cut off from its terminal by accident.
fn ignore_termination_signals() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    for kind in [SignalKind::terminate(), SignalKind::interrupt(), SignalKind::hangup()] {
        let mut stream = signal(kind)?;
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                tracing::info!(signal = ?kind, "holder ignores termination signal");
            }
        });
    }
    Ok(())
}

async fn serve(game: Game) -> std::io::Result<()> {
    let Game { pid, started_at_ms, listener, socket, master, console, child } = game;
    let (input_tx, input_rx) = mpsc::channel::<Vec<u8>>(256);
    let pty_closed = tokio::spawn(read_pty(Arc::clone(&master), Arc::clone(&console)));
    tokio::spawn(write_pty(Arc::clone(&master), input_rx));
    let (exit_tx, exit_rx) = watch::channel::<Option<ExitInfo>>(None);
    tokio::spawn(wait_for_exit(child, pty_closed, Arc::clone(&console), exit_tx));

    let shared = Arc::new(Shared { pid, started_at_ms, master, console, input: input_tx, exit: exit_rx });
    let mut current: Option<tokio::task::JoinHandle<()>> = None;
    let (released_tx, mut released_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                // One agent at a time: a new connection means the old agent is gone.
                if let Some(previous) = current.take() {
                    previous.abort();
                }
                let shared = Arc::clone(&shared);
                let released = released_tx.clone();
                current = Some(tokio::spawn(async move {
                    match serve_agent(stream, &shared).await {
                        Ok(true) => { let _ = released.send(()).await; }
                        Ok(false) => tracing::info!("agent detached"),
                        Err(e) => tracing::info!(error = %e, "agent connection ended"),
                    }
                }));
            }
            _ = released_rx.recv() => break,
        }
    }
    let _ = std::fs::remove_file(&socket);
    tracing::info!(game_pid = pid, "holder released");
    Ok(())
}

struct Shared {
    pid: u32,
    started_at_ms: u64,
    master: Arc<AsyncFd<OwnedFd>>,
    console: Arc<Console>,
    input: mpsc::Sender<Vec<u8>>,
    exit: watch::Receiver<Option<ExitInfo>>,
}

/// Serves one agent. Returns `Ok(true)` when the agent released the finished holder.
async fn serve_agent(stream: UnixStream, shared: &Shared) -> std::io::Result<bool> {
    let (mut reader, mut writer) = stream.into_split();
    let Some(ToHolder::Attach { since }) = ToHolder::read(&mut reader).await? else {
        return Ok(false);
    };
    let (ring_start, _) = shared.console.bounds();
    let hello = HolderHello {
        game_pid: shared.pid,
        started_at_ms: shared.started_at_ms,
        ring_start,
        exited: shared.exit.borrow().clone(),
    };
    FromHolder::Hello(hello).write(&mut writer).await?;

    // Reads are not cancel-safe, so they run in their own task and arrive through a channel.
    let (requests_tx, mut requests) = mpsc::channel::<ToHolder>(64);
    let read_task = tokio::spawn(async move {
        while let Ok(Some(request)) = ToHolder::read(&mut reader).await {
            if requests_tx.send(request).await.is_err() {
                break;
            }
        }
    });
    let _abort_reader = AbortOnDrop(read_task);

    let mut follower = shared.console.follow(Some(since));
    let mut exit = shared.exit.clone();
    let mut exit_sent = false;
    loop {
        let finished = exit.borrow().clone();
        if let Some(info) = finished.filter(|info| !exit_sent && follower.cursor() >= info.total) {
            FromHolder::Exited(info).write(&mut writer).await?;
            exit_sent = true;
        }
        tokio::select! {
            request = requests.recv() => match request {
                None => return Ok(false),
                Some(ToHolder::Release) if exit_sent => return Ok(true),
                Some(request) => handle_request(request, shared),
            },
            chunk = follower.next(CHUNK) => match chunk {
                Some(Chunk::Data { offset, bytes }) => {
                    FromHolder::Output { offset, data: bytes }.write(&mut writer).await?;
                }
                // The agent sees the jump in the next offset.
                Some(Chunk::Gap { .. }) => {}
                None => return Ok(false),
            },
            changed = exit.changed(), if !exit_sent => {
                if changed.is_err() {
                    return Ok(false);
                }
            }
        }
    }
}

fn handle_request(request: ToHolder, shared: &Shared) {
    match request {
        ToHolder::Input(bytes) => {
            if shared.input.try_send(bytes).is_err() {
                tracing::warn!("console input dropped: the game is not reading its input");
            }
        }
        ToHolder::Resize { cols, rows } => {
            if let Err(e) = pty::resize(shared.master.get_ref(), cols, rows) {
                tracing::warn!(error = %e, "resize failed");
            }
        }
        ToHolder::Signal(number) => signal_group(shared.pid, number),
        ToHolder::Attach { .. } | ToHolder::Release => {
            tracing::warn!(?request, "unexpected request ignored");
        }
    }
}

/// Signals the game's whole process group (its pid is the group id: it leads its session).
fn signal_group(pid: u32, number: i32) {
    let (Some(pid), Some(signal)) =
        (rustix::process::Pid::from_raw(pid as i32), rustix::process::Signal::from_named_raw(number))
    else {
        tracing::warn!(number, "refusing to send an unknown signal");
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pid, signal) {
        tracing::info!(error = %e, number, "signal not delivered");
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Copies PTY output into the ring until the terminal closes. Never waits for any reader.
async fn read_pty(master: Arc<AsyncFd<OwnedFd>>, console: Arc<Console>) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let Ok(mut guard) = master.readable().await else {
            return;
        };
        match guard.try_io(|fd| {
            rustix::io::read(fd.get_ref().as_fd(), &mut buffer[..]).map_err(std::io::Error::from)
        }) {
            Ok(Ok(0)) => return,
            Ok(Ok(n)) => console.append(&buffer[..n]),
            // EIO: every process holding the terminal's slave side has closed it.
            Ok(Err(_)) => return,
            Err(_would_block) => continue,
        }
    }
}

/// Writes console input to the PTY. Its own task, so a game that stops reading its input
/// can only fill this queue, never stall output.
async fn write_pty(master: Arc<AsyncFd<OwnedFd>>, mut input: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = input.recv().await {
        let mut written = 0;
        while written < bytes.len() {
            let Ok(mut guard) = master.writable().await else {
                return;
            };
            match guard.try_io(|fd| {
                rustix::io::write(fd.get_ref().as_fd(), &bytes[written..]).map_err(std::io::Error::from)
            }) {
                Ok(Ok(n)) => written += n,
                Ok(Err(_)) => return,
                Err(_would_block) => continue,
            }
        }
    }
}

async fn wait_for_exit(
    mut child: tokio::process::Child,
    pty_closed: tokio::task::JoinHandle<()>,
    console: Arc<Console>,
    exit: watch::Sender<Option<ExitInfo>>,
) {
    use std::os::unix::process::ExitStatusExt;
    let status = child.wait().await;
    let exited_at_ms = now_ms();
    let _ = tokio::time::timeout(DRAIN_GRACE, pty_closed).await;
    let (code, signal) = match status {
        Ok(status) => (status.code(), status.signal()),
        Err(e) => {
            tracing::error!(error = %e, "waiting for the game failed");
            (None, None)
        }
    };
    let (_, total) = console.bounds();
    tracing::info!(code, signal, "game exited");
    exit.send_replace(Some(ExitInfo { code, signal, exited_at_ms, total }));
    // Keep the sender alive so that agents attaching later still see the exit.
    std::future::pending::<()>().await;
}
