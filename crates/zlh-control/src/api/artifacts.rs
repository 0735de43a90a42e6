//! `/api/admin/artifacts`: the artifact store agents install runtimes, code-server and mods
//! from, managed from the browser (what `zlh artifacts` does on the command line).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::api::ArtifactView;
use zlh_proto::catalog::{Kind, is_safe_name};

use super::admin::admin_only;
use crate::ControlPlane;
use crate::access::CurrentUser;
use crate::activity::Event;

/// Largest file an admin uploads through the API (runtimes and code-server are ~100 MB).
const MAX_UPLOAD: u64 = 4 << 30;

#[utoipa::path(get, path = "/api/admin/artifacts", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [ArtifactView], description = "Every artifact, by kind, name and version"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<ArtifactView>>, ApiError> {
    admin_only(&user)?;
    let catalog = control.artifacts.catalog().map_err(broken)?;
    let mut views = Vec::new();
    for kind in Kind::ALL {
        for (name, package) in catalog.packages(kind) {
            for (version, artifact) in &package.versions {
                views.push(ArtifactView {
                    kind: kind.as_str().to_owned(),
                    name: name.clone(),
                    version: version.clone(),
                    url: artifact.url.clone(),
                    sha256: artifact.sha256.clone(),
                    size: artifact.size,
                });
            }
        }
    }
    Ok(Json(views))
}

#[utoipa::path(put, path = "/api/admin/artifacts/{kind}/{name}/{version}", tag = "admin", security(("bearer" = [])),
    params(("kind" = String, Path, description = "runtime, addon or mod"), ("name" = String, Path), ("version" = String, Path),
        ("file" = String, Query, description = "the file's name (node-20.tar.gz, coolmod-1.2.jar)")),
    responses((status = 201, body = ArtifactView, description = "Stored, hashed and listed; agents can install it"),
        (status = 400, body = zlh_proto::ErrorBody), (status = 403, body = zlh_proto::ErrorBody),
        (status = 413, body = zlh_proto::ErrorBody)))]
pub(super) async fn put(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(params): Path<HashMap<String, String>>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Result<(StatusCode, Json<ArtifactView>), ApiError> {
    admin_only(&user)?;
    let (kind, name, version) = which(&params)?;
    let file = query.get("file").filter(|f| is_safe_name(f)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "say the file's name: ?file=<letters, digits, '.', '_', '-', '+'>",
        )
    })?;
    // The body goes to a file of its own first: the store copies in only what arrived whole.
    let folder = control.artifacts.uploads().join(crate::auth::random_token(12));
    let path = folder.join(file);
    let stored = async {
        tokio::fs::create_dir_all(&folder).await.map_err(|_| ApiError::internal())?;
        let mut out = tokio::fs::File::create(&path).await.map_err(|_| ApiError::internal())?;
        let mut body = request.into_body().into_data_stream();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|_| ApiError::new(ErrorCode::UploadIncomplete, "the upload broke off"))?;
            received += chunk.len() as u64;
            if received > MAX_UPLOAD {
                return Err(ApiError::new(ErrorCode::PayloadTooLarge, "an artifact is at most 4 GiB"));
            }
            out.write_all(&chunk).await.map_err(|_| ApiError::internal())?;
        }
        out.flush().await.map_err(|_| ApiError::internal())?;
        let (store, name, version, path) =
            (control.artifacts.clone(), name.clone(), version.clone(), path.clone());
        tokio::task::spawn_blocking(move || store.add(kind, &name, &version, &path))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.0))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&folder).await;
    let artifact = stored?;
    Event::by(&user, "artifact_added")
        .detail(format!("{} {name} {version}", kind.as_str()))
        .record(&control)
        .await;
    Ok((
        StatusCode::CREATED,
        Json(ArtifactView {
            kind: kind.as_str().to_owned(),
            name,
            version,
            url: artifact.url,
            sha256: artifact.sha256,
            size: artifact.size,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/admin/artifacts/{kind}/{name}/{version}", tag = "admin", security(("bearer" = [])),
    params(("kind" = String, Path), ("name" = String, Path), ("version" = String, Path)),
    responses((status = 204, description = "Removed from the catalog and the store (installed copies stay)"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn remove(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    admin_only(&user)?;
    let (kind, name, version) = which(&params)?;
    let catalog = control.artifacts.catalog().map_err(broken)?;
    if catalog.artifact(kind, &name, &version).is_none() {
        return Err(ApiError::not_found("artifact"));
    }
    let store = control.artifacts.clone();
    let (n, v) = (name.clone(), version.clone());
    tokio::task::spawn_blocking(move || store.remove(kind, &n, &v))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(broken)?;
    Event::by(&user, "artifact_removed")
        .detail(format!("{} {name} {version}", kind.as_str()))
        .record(&control)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The kind, name and version a route names.
fn which(params: &HashMap<String, String>) -> Result<(Kind, String, String), ApiError> {
    let kind = params
        .get("kind")
        .and_then(|k| Kind::parse(k))
        .ok_or_else(|| ApiError::new(ErrorCode::BadRequest, "the kind is runtime, addon or mod"))?;
    let named = |key: &str| {
        params.get(key).filter(|v| is_safe_name(v)).cloned().ok_or_else(|| {
            ApiError::new(ErrorCode::BadRequest, format!("the {key} is letters, digits, '.', '_', '-', '+'"))
        })
    };
    Ok((kind, named("name")?, named("version")?))
}

fn broken(error: crate::artifacts::ArtifactError) -> ApiError {
    tracing::error!(error = %error, "the artifact store");
    ApiError::new(ErrorCode::Internal, "the artifact store cannot be read or changed; see the log")
}
