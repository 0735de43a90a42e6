//! A template's install step: its script, run by the server's driver in a container of its
//! own with the server's files at `/mnt/server`, before the first start (and again when the
//! owner asks). While it runs the server cannot start; when it fails the server says why and
//! the owner can retry. Its output is kept in `installs/<id>.log` under the data directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use zlh_proto::api::{InstallState, InstallView};

use crate::ControlPlane;
use crate::db::{Server, StoreError};
use crate::drivers::InstallRun;
use crate::registry::{Method, PowerAction};
use crate::templates::InstallStep;

/// How much of the output `GET …/install` shows.
const SHOWN_LOG: u64 = 64 << 10;
/// How much output is kept: a script that prints forever does not fill the disk.
const KEPT_LOG: u64 = 8 << 20;

fn log_path(control: &ControlPlane, server_id: i64) -> PathBuf {
    control.config.data_dir.join("installs").join(format!("{server_id}.log"))
}

/// The install step's state and the end of its output.
pub(crate) fn view(control: &ControlPlane, server: &Server) -> InstallView {
    let mut log = String::new();
    if let Ok(mut file) = std::fs::File::open(log_path(control, server.id)) {
        let length = file.metadata().map(|m| m.len()).unwrap_or_default();
        let _ = file.seek(SeekFrom::Start(length.saturating_sub(SHOWN_LOG)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        log = String::from_utf8_lossy(&bytes).into_owned();
    }
    InstallView { state: server.install, message: server.install_message.clone(), log }
}

/// Marks the server installing, then runs the step in the background; starts the server
/// afterwards when `start` (and the step succeeded). `false` when an install already runs.
pub(crate) async fn begin(
    control: &Arc<ControlPlane>,
    server_id: i64,
    step: InstallStep,
    start: bool,
) -> Result<bool, StoreError> {
    if !control.store.begin_install(server_id, control.cluster.id()).await? {
        return Ok(false);
    }
    let control = Arc::clone(control);
    tokio::spawn(async move {
        let outcome = run(&control, server_id, &step).await;
        let (state, message) = match &outcome {
            Ok(()) => (None, None),
            Err(why) => (Some(InstallState::Failed), Some(why.as_str())),
        };
        match &outcome {
            Ok(()) => tracing::info!(server_id, "install step done"),
            Err(why) => tracing::warn!(server_id, error = %why, "install step failed"),
        }
        if let Err(e) = control.store.set_install(server_id, state, message).await {
            tracing::error!(server_id, error = %e, "cannot record the install step's outcome");
            return;
        }
        if let Some(agent) = control.registry.get(server_id).filter(|_| outcome.is_ok() && start) {
            if let Err(e) = agent.power(PowerAction::Start).await {
                tracing::warn!(server_id, error = %e, "the server did not start after its install");
            }
            control.poller.follow(server_id).await;
        }
    });
    Ok(true)
}

/// Runs the step; the error says why it failed, for the owner.
async fn run(control: &Arc<ControlPlane>, server_id: i64, step: &InstallStep) -> Result<(), String> {
    let server = control.store.server(server_id).await.ok().flatten().ok_or("the server is gone")?;
    let agent = control.registry.get(server_id).ok_or("the server's agent is not known")?;
    // The variables as the owner set them (the agent keeps them), and where the game will be.
    let values = agent.call(Method::Get, "/variables", None).await.map_err(|e| e.to_string())?;
    let mut env: Vec<(String, String)> = values["values"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let ports = control.store.ports(&[server_id]).await.map_err(|e| e.to_string())?;
    if let Some(first) = ports.get(&server_id).and_then(|p| p.ports.first()) {
        env.push(("SERVER_PORT".into(), first.port.to_string()));
    }
    env.push(("SERVER_IP".into(), "0.0.0.0".into()));
    if let Some(limits) = server.limits {
        env.push(("SERVER_MEMORY".into(), limits.memory_mb.to_string()));
    }
    let run = InstallRun {
        image: control.config.image_for(&step.image),
        entrypoint: step.entrypoint.clone(),
        script: step.script.clone(),
        env,
        timeout: control.config.provisioning.install_timeout,
    };

    let path = log_path(control, server_id);
    std::fs::create_dir_all(path.parent().unwrap_or(&path)).map_err(|e| e.to_string())?;
    let mut file = std::fs::File::create(&path).map_err(|e| format!("its log cannot be written: {e}"))?;
    let (log, mut output) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
    let writer = tokio::task::spawn_blocking(move || {
        let mut written = 0u64;
        let mut last_line = String::new();
        while let Some(chunk) = output.blocking_recv() {
            if written < KEPT_LOG {
                let _ = file.write_all(&chunk);
                written += chunk.len() as u64;
            }
            let text = String::from_utf8_lossy(&chunk);
            if let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) {
                last_line = line.trim().to_owned();
            }
        }
        let _ = file.sync_all();
        last_line
    });
    let ran = control.drivers.by_name(&server.driver).install(server_id, &run, log).await;
    let last_line = writer.await.unwrap_or_default();
    let said = if last_line.is_empty() { String::new() } else { format!(": {last_line}") };
    match ran {
        Err(e) => Err(e.to_string()),
        Ok(0) => Ok(()),
        Ok(code) => Err(format!("the install script exited with code {code}{said}")),
    }
}
