//! The agent's side of a holder: start one, attach to one.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::process::{HolderSpec, HolderStarted};
use super::protocol::{FromHolder, HolderHello, ToHolder};

/// How long a holder may take to start the game and say so.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an attach may take to be answered.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a holder could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HolderError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    StartFailed(String),
    #[error("the process holder did not answer in time")]
    Timeout,
}

/// A holder that started its game.
#[derive(Debug)]
pub(crate) struct StartedHolder {
    /// The holder process (our child until this agent exits).
    pub(crate) child: tokio::process::Child,
    /// The game's pid.
    pub(crate) game_pid: u32,
}

/// Starts a holder for `spec`, using this very executable (`exe agent-holder`). The holder's
/// own log goes to `log_path`.
pub(crate) async fn start(
    exe: &Path,
    spec: &HolderSpec,
    spec_path: &Path,
    log_path: &Path,
) -> Result<StartedHolder, HolderError> {
    write_private(spec_path, &serde_json::to_vec(spec).map_err(std::io::Error::from)?)?;
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path)?;
    let mut child = tokio::process::Command::new(exe)
        .arg("agent-holder")
        .arg("--spec")
        .arg(spec_path)
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| HolderError::StartFailed("no stdout".into()))?;
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stdout);
    match tokio::time::timeout(START_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => {
            let _ = child.start_kill();
            return Err(HolderError::Timeout);
        }
        Ok(read) => read?,
    };
    let started: HolderStarted = serde_json::from_str(line.trim())
        .map_err(|_| HolderError::StartFailed("the process holder exited before starting the game".into()))?;
    match (started.game_pid, started.error) {
        (Some(game_pid), _) => Ok(StartedHolder { child, game_pid }),
        (None, error) => {
            let _ = child.wait().await;
            Err(HolderError::StartFailed(error.unwrap_or_else(|| "unknown error".into())))
        }
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)
}

/// An attached holder: its hello, and both halves of the connection.
#[derive(Debug)]
pub(crate) struct HolderConnection {
    pub(crate) hello: HolderHello,
    pub(crate) reader: OwnedReadHalf,
    pub(crate) writer: OwnedWriteHalf,
}

/// Attaches to the holder listening on `socket`, asking for output from holder-local `since`.
pub(crate) async fn attach(socket: &Path, since: u64) -> Result<HolderConnection, HolderError> {
    let attach = async {
        let stream = UnixStream::connect(socket).await?;
        let (mut reader, mut writer) = stream.into_split();
        ToHolder::Attach { since }.write(&mut writer).await?;
        match FromHolder::read(&mut reader).await? {
            Some(FromHolder::Hello(hello)) => Ok(HolderConnection { hello, reader, writer }),
            _ => Err(HolderError::StartFailed("the process holder did not say hello".into())),
        }
    };
    tokio::time::timeout(ATTACH_TIMEOUT, attach).await.map_err(|_| HolderError::Timeout)?
}

/// Where a holder's files live inside the agent's run directory.
#[derive(Debug, Clone)]
pub(crate) struct HolderPaths {
    pub(crate) socket: PathBuf,
    pub(crate) spec: PathBuf,
    pub(crate) log: PathBuf,
}

impl HolderPaths {
    pub(crate) fn in_dir(run_dir: &Path) -> HolderPaths {
        HolderPaths {
            socket: run_dir.join("game.sock"),
            spec: run_dir.join("game.spec.json"),
            log: run_dir.join("holder.log"),
        }
    }
}
