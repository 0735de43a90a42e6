//! `/mods`: list, enable, disable, remove, upload, install from the catalog.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::agent::{JobKind, JobView, ModInstall, ModView};
use zlh_proto::catalog::Kind;

use super::AppState;
use super::files::{file_error, write_body};

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModView>>, ApiError> {
    Ok(Json(state.mods.list(&state.files).map_err(file_error)?))
}

pub(super) async fn enable(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let file = state.mods.set_enabled(&state.files, &file, true).map_err(file_error)?;
    Ok(Json(serde_json::json!({ "file": file, "enabled": true })))
}

pub(super) async fn disable(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let file = state.mods.set_enabled(&state.files, &file, false).map_err(file_error)?;
    Ok(Json(serde_json::json!({ "file": file, "enabled": false })))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.mods.remove(&state.files, &file).map_err(file_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct UploadQuery {
    name: String,
}

/// Uploads a jar (streamed to a temporary file, then renamed into the mods directory).
pub(super) async fn upload(
    State(state): State<AppState>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(ErrorCode::BadRequest, "expected ?name=<file>.jar"));
    };
    let path = state.mods.upload_path(&state.files, &query.name).map_err(file_error)?;
    write_body(&state.files, &path, body).await?;
    Ok(StatusCode::CREATED)
}

/// Installs a mod from the artifact catalog (SHA-256 and size verified) in the background.
pub(super) async fn install(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<ModInstall>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let catalog_url = state
        .config
        .catalog_url
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this server has no artifact catalog"))?;
    let file = format!("{}-{}.jar", request.name, request.version);
    let path = state.mods.upload_path(&state.files, &file).map_err(file_error)?;
    let (files, state_dir) = (std::sync::Arc::clone(&state.files), state.config.state_path());
    let job = state.jobs.spawn(JobKind::ModInstall, &file, move |progress| async move {
        let client = crate::artifacts::ArtifactClient::new(catalog_url);
        let catalog = client.catalog().await?;
        let artifact = catalog
            .artifact(Kind::Mod, &request.name, &request.version)
            .ok_or_else(|| format!("{} {} is not in the artifact catalog", request.name, request.version))?
            .clone();
        let download = state_dir.join(format!("mod-{}.download", artifact.sha256));
        client.download(&artifact, &download, &progress).await?;
        let body = Body::from(tokio::fs::read(&download).await.map_err(|e| e.to_string())?);
        let _ = tokio::fs::remove_file(&download).await;
        write_body(&files, &path, body).await.map_err(|e| e.message)
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}
