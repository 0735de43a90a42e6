//! The agent's HTTP API. Every route but `GET /health` requires the agent's bearer secret.
//!
//! API Boundary: these routes and their bodies (`zlh_proto::agent`, `zlh_proto::console`) are
//! the contract the control plane speaks; their shapes come from the original platform.

mod auth;
mod backups;
mod console;
mod dev;
mod files;
mod mods;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use tokio_util::sync::CancellationToken;
use zlh_proto::ErrorCode;
use zlh_proto::agent::{
    AgentInfo, ConsoleCommand, CrashHistory, GameState, Health, Heartbeat, JobState, PowerAccepted,
    Readiness, ServerUsage, StatusSnapshot, VariableValues,
};

use crate::clock::{format_ms, now_ms};
use crate::config::AgentConfig;
use crate::procfs;
use crate::supervisor::{PowerError, Supervisor};
use zlh_http::{ApiError, ApiJson};

/// Longest console command accepted.
const MAX_COMMAND: usize = 1024;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The game's supervisor.
    pub supervisor: Supervisor,
    /// The agent's configuration.
    pub config: Arc<AgentConfig>,
    /// A development container's environment, when this is one.
    pub dev: Option<Arc<crate::dev::DevEnvironment>>,
    /// Background jobs.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// The server directory.
    pub files: Arc<crate::files::Files>,
    /// Its backups.
    pub backups: Arc<crate::backup::Backups>,
    /// Its mods.
    pub mods: Arc<crate::mods::Mods>,
    /// The owner's values of the game's variables.
    pub variables: Arc<crate::variables::Variables>,
    /// When the agent started, for its uptime.
    pub started: Instant,
    /// Cancelled when the agent shuts down, to close console viewers.
    pub shutdown: CancellationToken,
}

/// The agent's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/status", get(status))
        .route("/heartbeat", get(heartbeat))
        .route("/crashes", get(crashes))
        .route("/start", post(start))
        .route("/stop", post(stop))
        .route("/restart", post(restart))
        .route("/kill", post(kill))
        .route("/console/command", post(console_command))
        .route("/variables", get(variables).put(set_variables))
        .route("/console", get(console::upgrade))
        .route("/files", get(files::list).delete(files::delete))
        .route("/files/content", get(files::download).put(files::upload))
        .route("/files/mkdir", post(files::mkdir))
        .route("/files/rename", post(files::rename))
        .route("/files/copy", post(files::copy))
        .route("/files/chmod", post(files::chmod))
        .route("/files/compress", post(files::compress))
        .route("/files/extract", post(files::extract))
        .route("/backups", get(backups::list).post(backups::create))
        .route("/backups/restore", post(backups::restore))
        .route("/backups/{id}", axum::routing::delete(backups::delete).patch(backups::change))
        .route("/backups/{id}/download", get(backups::download))
        .route("/mods", get(mods::list))
        .route("/mods/install", post(mods::install))
        .route("/mods/upload", axum::routing::put(mods::upload))
        .route("/mods/{file}/enable", post(mods::enable))
        .route("/mods/{file}/disable", post(mods::disable))
        .route("/mods/{file}", axum::routing::delete(mods::remove))
        .route("/jobs", get(dev::jobs))
        .route("/jobs/{id}", get(dev::job))
        .route("/dev/runtimes", get(dev::runtimes))
        .route("/dev/runtimes/install", post(dev::install))
        .route("/dev/runtimes/switch", post(dev::switch))
        .route("/dev/runtimes/rollback", post(dev::rollback))
        .route("/dev/runtimes/{runtime}/{version}", axum::routing::delete(dev::remove))
        .route("/dev/codeserver/start", post(dev::code_server_start))
        .route("/dev/codeserver/stop", post(dev::code_server_stop))
        .route("/dev/codeserver/restart", post(dev::code_server_restart))
        .fallback(zlh_http::not_found)
        .method_not_allowed_fallback(zlh_http::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_secret))
        // Bodies are limited where they are read (`ApiJson`), which can answer cleanly.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(zlh_http::close_when_body_unread))
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// What provisioning is doing now, for people waiting on it ("… installing node 20 (12.0 of
/// 48.5 MiB)").
fn provisioning_reason(jobs: &crate::jobs::Jobs) -> String {
    let mut reason = "the container is being provisioned".to_owned();
    let job = jobs
        .list()
        .into_iter()
        .rev()
        .find(|j| j.kind == zlh_proto::agent::JobKind::Provision && j.state == JobState::Running);
    if let Some(message) = job.as_ref().and_then(|j| j.message.as_deref()) {
        reason.push_str(": ");
        reason.push_str(message);
    }
    // Only while a download runs: a finished one's figures would not describe what follows.
    if let Some((done, total)) = job.and_then(|j| j.total.filter(|t| j.done < *t).map(|t| (j.done, t))) {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        reason.push_str(&format!(" ({:.1} of {:.1} MiB)", mib(done), mib(total)));
    }
    reason
}

async fn ready(State(state): State<AppState>) -> Json<Readiness> {
    Json(readiness(&state))
}

async fn status(State(state): State<AppState>) -> Json<StatusSnapshot> {
    Json(snapshot(&state).await)
}

/// `/ready` and `/status` in one answer, for the poller.
async fn heartbeat(State(state): State<AppState>) -> Json<Heartbeat> {
    Json(Heartbeat { readiness: readiness(&state), status: snapshot(&state).await })
}

fn readiness(state: &AppState) -> Readiness {
    let status = state.supervisor.status();
    let provisioned = state.dev.as_ref().is_none_or(|dev| dev.is_complete());
    let reason = match status.state {
        GameState::Installing => provisioning_reason(&state.jobs),
        GameState::Running => "the server is running".to_owned(),
        GameState::Starting => "the server is starting: waiting for its ready line".to_owned(),
        GameState::Stopping => "the server is stopping".to_owned(),
        GameState::Stopped => "the server is stopped".to_owned(),
        GameState::Crashed => match status.next_restart_at_ms {
            Some(at) => {
                format!("the server crashed; it restarts in {} s", at.saturating_sub(now_ms()).div_ceil(1000))
            }
            None => "the server crashed".to_owned(),
        },
        GameState::Error => "the server failed repeatedly or could not start; start it again".to_owned(),
    };
    Readiness { ready: provisioned && status.state == GameState::Running, reason }
}

async fn snapshot(state: &AppState) -> StatusSnapshot {
    let status = state.supervisor.status();
    let last_crash = status.crashes.last().cloned();
    let dev = state.dev.as_ref().map(|dev| dev.status());
    let usage = server_usage(state).await;
    StatusSnapshot {
        state: status.state,
        pid: status.pid,
        started_at: status.started_at_ms.map(format_ms),
        uptime_ms: status
            .started_at_ms
            .filter(|_| status.pid.is_some())
            .map(|at| now_ms().saturating_sub(at)),
        ready_at: status.ready_at_ms.map(format_ms),
        consecutive_crashes: status.consecutive_crashes,
        next_restart_at: status.next_restart_at_ms.map(format_ms),
        last_crash_classification: last_crash.as_ref().map(|crash| crash.classification),
        last_crash,
        last_error: status.last_error,
        provisioning_complete: state.dev.as_ref().is_none_or(|dev| dev.is_complete()),
        server_root: Some(state.config.game.working_dir.display().to_string()),
        runtime_installed: dev.as_ref().map(|d| d.runtime_installed),
        dev_provisioned: dev.as_ref().map(|d| d.dev_provisioned),
        dev_ready_at: dev.as_ref().and_then(|d| d.dev_ready_at.clone()),
        workspace_root: dev.as_ref().map(|d| d.workspace_root.clone()),
        code_server_installed: dev.as_ref().map(|d| d.code_server_installed),
        code_server_running: dev.as_ref().map(|d| d.code_server_running),
        resources: status.pid.and_then(procfs::resource_use),
        usage,
        agent: AgentInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_ms: state.started.elapsed().as_millis() as u64,
        },
    }
}

/// Work that writes (a backup, a restore, an extract) is refused on a full disk before it
/// starts: its job would only fail.
async fn has_room(state: &AppState) -> Result<(), ApiError> {
    let files = Arc::clone(&state.files);
    let room = tokio::task::spawn_blocking(move || files.disk().has_room())
        .await
        .map_err(|_| ApiError::internal())?;
    room.map_err(ApiError::quota_exceeded)
}

/// What the whole server uses: its container's cgroup and network (when it has a container of
/// its own) and its disk (when it has a limit; measuring may walk the tree, off the workers).
async fn server_usage(state: &AppState) -> Option<ServerUsage> {
    let (files, container) = (Arc::clone(&state.files), state.config.container);
    let usage = tokio::task::spawn_blocking(move || {
        let mut usage = ServerUsage { disk: files.disk().usage(), ..ServerUsage::default() };
        if container {
            (usage.memory_bytes, usage.cpu_seconds) = crate::cgroup::container_usage();
            let network = procfs::network_totals();
            (usage.network_rx_bytes, usage.network_tx_bytes) = (network.map(|n| n.0), network.map(|n| n.1));
        }
        usage
    })
    .await
    .ok()?;
    (usage != ServerUsage::default()).then_some(usage)
}

async fn crashes(State(state): State<AppState>) -> Json<CrashHistory> {
    Json(CrashHistory { crashes: state.supervisor.status().crashes.to_vec() })
}

/// The answer to a refused power action or console command.
fn power_error(error: PowerError) -> ApiError {
    let message = error.to_string();
    match error {
        PowerError::AlreadyRunning(state) => {
            ApiError::new(ErrorCode::AlreadyRunning, message).with_state(state)
        }
        PowerError::InProgress(state) => {
            ApiError::new(ErrorCode::PowerActionInProgress, message).with_state(state)
        }
        PowerError::NotRunning(state) => ApiError::new(ErrorCode::NotRunning, message).with_state(state),
        PowerError::StartFailed(_) => ApiError::new(ErrorCode::StartFailed, message),
        PowerError::MissingFiles(_) => ApiError::new(ErrorCode::MissingFiles, message),
        PowerError::ShuttingDown => ApiError::new(ErrorCode::ShuttingDown, message),
    }
}

/// 202 while the action is under way (`starting`, `stopping`), 200 when it is already done.
fn power_response(result: Result<GameState, PowerError>) -> Response {
    match result {
        Ok(state) => {
            let code = match state {
                GameState::Starting | GameState::Stopping => StatusCode::ACCEPTED,
                _ => StatusCode::OK,
            };
            (code, Json(PowerAccepted { state })).into_response()
        }
        Err(e) => power_error(e).into_response(),
    }
}

async fn start(State(state): State<AppState>) -> Response {
    power_response(state.supervisor.start().await)
}

async fn stop(State(state): State<AppState>) -> Response {
    power_response(state.supervisor.stop().await)
}

async fn restart(State(state): State<AppState>) -> Response {
    power_response(state.supervisor.restart().await)
}

async fn variables(State(state): State<AppState>) -> Json<VariableValues> {
    Json(VariableValues { values: state.variables.current(&state.config.game) })
}

/// Sets some of the variables' values, for the next start.
async fn set_variables(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VariableValues>,
) -> Result<Json<VariableValues>, ApiError> {
    use crate::variables::VariableError;
    state.variables.set(&body.values).map_err(|e| match e {
        VariableError::Unknown(_) | VariableError::BadValue(_) => {
            ApiError::new(ErrorCode::InvalidVariable, e.to_string())
        }
        VariableError::Io(_) => {
            tracing::error!(error = %e, "variables not saved");
            ApiError::internal()
        }
    })?;
    Ok(Json(VariableValues { values: state.variables.current(&state.config.game) }))
}

async fn kill(State(state): State<AppState>) -> Response {
    power_response(state.supervisor.kill().await)
}

async fn console_command(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ConsoleCommand>,
) -> Result<StatusCode, ApiError> {
    let command = body.command.trim_end_matches(['\r', '\n']);
    if command.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidCommand, "the command is empty"));
    }
    if command.len() > MAX_COMMAND {
        return Err(ApiError::new(
            ErrorCode::InvalidCommand,
            format!("the command is longer than {MAX_COMMAND} bytes"),
        ));
    }
    if command.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidCommand,
            "the command must be one line without control characters",
        ));
    }
    state.supervisor.console_command(command.to_owned()).await.map_err(power_error)?;
    Ok(StatusCode::ACCEPTED)
}
