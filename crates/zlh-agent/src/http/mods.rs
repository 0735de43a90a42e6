//! `/mods`: list, enable, disable, remove, upload, install from the catalog.

use std::sync::Arc;

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
use super::files::{on_disk, write_body};
use crate::dev::packages::PackageError;

pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModView>>, ApiError> {
    let mods = Arc::clone(&state.mods);
    Ok(Json(on_disk(&state.files, move |files| mods.list(files)).await?))
}

pub(super) async fn enable(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mods = Arc::clone(&state.mods);
    let file = on_disk(&state.files, move |files| mods.set_enabled(files, &file, true)).await?;
    Ok(Json(serde_json::json!({ "file": file, "enabled": true })))
}

pub(super) async fn disable(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mods = Arc::clone(&state.mods);
    let file = on_disk(&state.files, move |files| mods.set_enabled(files, &file, false)).await?;
    Ok(Json(serde_json::json!({ "file": file, "enabled": false })))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mods = Arc::clone(&state.mods);
    on_disk(&state.files, move |files| mods.remove(files, &file)).await?;
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
    let path = state.mods.upload_path(&state.files, &query.name)?;
    write_body(&state.files, &path, body, state.config.files.upload_stall_timeout).await?;
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
    let path = state.mods.upload_path(&state.files, &file)?;
    let (files, state_dir) = (std::sync::Arc::clone(&state.files), state.config.state_path());
    let job = state.jobs.spawn(JobKind::ModInstall, &file, move |progress| async move {
        let client = crate::artifacts::ArtifactClient::new(catalog_url);
        let catalog = client.catalog().await.map_err(PackageError::from)?;
        let artifact = catalog
            .artifact(Kind::Mod, &request.name, &request.version)
            .ok_or_else(|| PackageError::NotInCatalog(request.name.clone(), request.version.clone()))?
            .clone();
        let download = state_dir.join(format!("mod-{}.download", artifact.sha256));
        client.download(&artifact, &download, &progress).await.map_err(PackageError::from)?;
        let copied = download.clone();
        let installed = on_disk(&files, move |files| {
            let mut upload = files.begin_upload(&path)?;
            let copied =
                std::fs::File::open(&copied).and_then(|mut from| std::io::copy(&mut from, &mut upload));
            match copied {
                Ok(_) => files.commit_upload(upload),
                Err(e) => {
                    files.abort_upload(upload);
                    Err(e.into())
                }
            }
        })
        .await;
        let _ = tokio::fs::remove_file(&download).await;
        installed
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}
