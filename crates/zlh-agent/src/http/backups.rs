//! `/backups`: list, create, restore, delete (see `crate::backup`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::agent::{BackupRequest, BackupView, JobKind, JobView};

use super::AppState;
use crate::backup::BackupError;

fn backup_error(error: BackupError) -> ApiError {
    match error {
        BackupError::Busy => ApiError::new(ErrorCode::BackupInProgress, error.to_string()),
        BackupError::NotFound => ApiError::not_found("backup"),
    }
}

pub(super) async fn list(State(state): State<AppState>) -> Json<Vec<BackupView>> {
    Json(state.backups.list())
}

/// Starts a backup in the background. The body (JSON, optional) may add exclusions.
pub(super) async fn create(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    // A list of exclusions: small, whatever a client sends.
    let body = axum::body::to_bytes(body, 64 * 1024).await.map_err(|_| {
        ApiError::new(ErrorCode::PayloadTooLarge, "a backup request is at most 64 KiB of JSON")
    })?;
    let request: BackupRequest = if body.is_empty() {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("the body is not a backup request: {e}"))
        })?
    };
    super::has_room(&state).await?;
    let turn = state.backups.try_turn().map_err(backup_error)?;
    let (backups, supervisor) = (std::sync::Arc::clone(&state.backups), state.supervisor.clone());
    let job = state.jobs.spawn(JobKind::Backup, "server directory", move |progress| async move {
        backups.create(turn, &supervisor, request.exclude, &progress).await.map(|_| ())
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[derive(Debug, Deserialize)]
pub(super) struct RestoreQuery {
    id: String,
}

/// Starts a restore in the background.
pub(super) async fn restore(
    State(state): State<AppState>,
    query: Result<Query<RestoreQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(ErrorCode::BadRequest, "expected ?id=<backup id>"));
    };
    if !state.backups.list().iter().any(|b| b.id == query.id) {
        return Err(ApiError::not_found("backup"));
    }
    super::has_room(&state).await?;
    let turn = state.backups.try_turn().map_err(backup_error)?;
    let (backups, supervisor) = (std::sync::Arc::clone(&state.backups), state.supervisor.clone());
    let job = state.jobs.spawn(JobKind::Restore, &query.id.clone(), move |progress| async move {
        backups.restore(turn, &query.id, &supervisor, &progress).await
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let _turn = state.backups.try_turn().map_err(backup_error)?;
    state.backups.delete(&id).map_err(backup_error)?;
    Ok(Json(serde_json::json!({ "id": id, "deleted": true })))
}
