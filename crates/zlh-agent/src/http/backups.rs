//! `/backups`: list, create, restore, rename/lock, download, delete (see `crate::backup`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::agent::{BackupChange, BackupRequest, BackupView, JobKind, JobView, backup_name};

use super::AppState;
use crate::backup::BackupError;

fn backup_error(error: BackupError) -> ApiError {
    match error {
        BackupError::Busy => ApiError::new(ErrorCode::BackupInProgress, error.to_string()),
        BackupError::NotFound => ApiError::not_found("backup"),
        BackupError::Locked => ApiError::new(ErrorCode::BackupLocked, error.to_string()),
        BackupError::Io(_) => {
            tracing::error!(error = %error, "a backup's description could not be saved");
            ApiError::new(ErrorCode::Internal, "the backup's description could not be saved")
        }
    }
}

fn named(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name {
        Some(name) => backup_name(&name).map_err(|why| ApiError::new(ErrorCode::BadRequest, why)),
        None => Ok(None),
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
    let mut request: BackupRequest = if body.is_empty() {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("the body is not a backup request: {e}"))
        })?
    };
    request.name = named(request.name)?;
    super::has_room(&state).await?;
    let turn = state.backups.try_turn().map_err(backup_error)?;
    let (backups, supervisor) = (std::sync::Arc::clone(&state.backups), state.supervisor.clone());
    let job = state.jobs.spawn(JobKind::Backup, "server directory", move |progress| async move {
        backups.create(turn, &supervisor, request, &progress).await.map(|_| ())
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

/// Renames, locks or unlocks a backup.
pub(super) async fn change(
    State(state): State<AppState>,
    Path(id): Path<String>,
    zlh_http::ApiJson(change): zlh_http::ApiJson<BackupChange>,
) -> Result<Json<BackupView>, ApiError> {
    let name = match change.name {
        Some(name) => Some(named(Some(name))?),
        None => None,
    };
    // With the turn: retention and deletion never race a rewrite of the description.
    let _turn = state.backups.try_turn().map_err(backup_error)?;
    Ok(Json(state.backups.change(&id, name, change.locked).map_err(backup_error)?))
}

/// The backup's archive (`.tar.zst`), streamed.
pub(super) async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let (view, path) = state.backups.archive(&id).map_err(backup_error)?;
    // Opened now: a backup deleted meanwhile still downloads whole.
    let file = tokio::fs::File::open(&path).await.map_err(|_| ApiError::not_found("backup"))?;
    let length = file.metadata().await.map_err(|_| ApiError::not_found("backup"))?.len();
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zstd".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"backup-{}.tar.zst\"", view.id)),
        ],
        body,
    )
        .into_response())
}
