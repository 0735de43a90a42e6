//! `/dev/*` (runtimes, code-server) and `/jobs` routes of development containers.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::agent::{
    InstalledPackage, InstalledPackages, JobKind, JobView, RollbackRequest, RuntimeRequest,
};

use super::AppState;
use crate::dev::DevEnvironment;
use crate::dev::packages::PackageError;

fn dev(state: &AppState) -> Result<Arc<DevEnvironment>, ApiError> {
    state
        .dev
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this agent is not a development container"))
}

/// A package failure as the API answers it.
impl From<PackageError> for ApiError {
    fn from(error: PackageError) -> ApiError {
        let message = error.to_string();
        let code = match error {
            PackageError::InvalidName(..) => ErrorCode::BadRequest,
            PackageError::NotInstalled(..) | PackageError::NoPrevious(_) | PackageError::NotInCatalog(..) => {
                ErrorCode::NotFound
            }
            PackageError::InUse(..) => ErrorCode::InUse,
            PackageError::Busy(_) => ErrorCode::InstallInProgress,
            PackageError::Artifact(_) | PackageError::Unpack(_) => ErrorCode::ArtifactStoreFailed,
            PackageError::Io { source, .. } => {
                tracing::error!(error = %source, "package operation failed");
                return ApiError::internal();
            }
        };
        ApiError::new(code, message)
    }
}

fn package(dev: &DevEnvironment, name: &str) -> Result<Json<InstalledPackage>, ApiError> {
    dev.runtimes
        .list()
        .into_iter()
        .find(|p| p.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("runtime"))
}

pub(super) async fn jobs(State(state): State<AppState>) -> Json<Vec<JobView>> {
    Json(state.jobs.list())
}

pub(super) async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    state.jobs.get(&id).map(Json).ok_or_else(|| ApiError::not_found("job"))
}

pub(super) async fn runtimes(State(state): State<AppState>) -> Result<Json<InstalledPackages>, ApiError> {
    let dev = dev(&state)?;
    Ok(Json(InstalledPackages { runtimes: dev.runtimes.list(), addons: dev.addons.list() }))
}

/// Installs in the background; answers with the job.
pub(super) async fn install(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RuntimeRequest>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let dev = dev(&state)?;
    // Refused now, not queued: the turn is taken before the job starts and held until it ends.
    let turn = dev.runtimes.turn_now(&request.runtime)?;
    let target = format!("{} {}", request.runtime, request.version);
    let job = state.jobs.spawn(JobKind::RuntimeInstall, &target, move |progress| async move {
        dev.runtimes.install(turn, &dev.artifacts, &request.runtime, &request.version, &progress).await
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

pub(super) async fn switch(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RuntimeRequest>,
) -> Result<Json<InstalledPackage>, ApiError> {
    let dev = dev(&state)?;
    dev.runtimes.switch_now(&request.runtime, &request.version)?;
    package(&dev, &request.runtime)
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RollbackRequest>,
) -> Result<Json<InstalledPackage>, ApiError> {
    let dev = dev(&state)?;
    dev.runtimes.rollback(&request.runtime)?;
    package(&dev, &request.runtime)
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path((runtime, version)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let dev = dev(&state)?;
    dev.runtimes.remove(&runtime, &version)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn code_server_answer(dev: &DevEnvironment) -> Json<serde_json::Value> {
    let status = dev.status();
    Json(serde_json::json!({
        "codeServerInstalled": status.code_server_installed,
        "codeServerRunning": status.code_server_running,
    }))
}

fn code_server_installed(dev: &DevEnvironment) -> Result<(), ApiError> {
    if dev.status().code_server_installed {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::NotRunning, "code-server is not installed in this container"))
    }
}

pub(super) async fn code_server_start(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dev = dev(&state)?;
    code_server_installed(&dev)?;
    dev.code_server.start(dev.code_server_launch());
    dev.code_server.wait_until_answering(crate::dev::code_server::REQUEST_WAIT).await;
    Ok(code_server_answer(&dev).await)
}

pub(super) async fn code_server_stop(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dev = dev(&state)?;
    dev.code_server.stop().await;
    Ok(code_server_answer(&dev).await)
}

pub(super) async fn code_server_restart(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dev = dev(&state)?;
    code_server_installed(&dev)?;
    dev.code_server.stop().await;
    dev.code_server.start(dev.code_server_launch());
    dev.code_server.wait_until_answering(crate::dev::code_server::REQUEST_WAIT).await;
    Ok(code_server_answer(&dev).await)
}
