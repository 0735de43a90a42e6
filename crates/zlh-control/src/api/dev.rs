//! `/api/dev/*`: the runtime catalog, code-server controls and IDE links of dev servers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use zlh_http::ApiError;
use zlh_proto::api::{IdeLink, Lifecycle, RuntimeChoice, ServerKind};
use zlh_proto::catalog::compare_versions;

use super::{CurrentUser, ServerId, agent_error, owned_server};
use crate::ControlPlane;
use crate::db::Server;
use crate::registry::Method;

/// A dev server the user may see; any other id (a game server included) is a 404.
async fn dev_server(control: &ControlPlane, user: &CurrentUser, id: i64) -> Result<Server, ApiError> {
    let server = owned_server(control, user, id).await?;
    if server.kind != ServerKind::Dev {
        return Err(ApiError::not_found("server"));
    }
    Ok(server)
}

#[utoipa::path(get, path = "/api/dev/runtimes", tag = "dev", security(("bearer" = [])),
    responses((status = 200, body = Vec<RuntimeChoice>, description = "What dev servers can be created with")))]
pub(super) async fn runtimes(
    State(control): State<Arc<ControlPlane>>,
    _user: CurrentUser,
) -> Result<Json<Vec<RuntimeChoice>>, ApiError> {
    let catalog = control.catalog().await.map_err(|e| ApiError::new(zlh_proto::ErrorCode::Internal, e))?;
    let choices = catalog
        .runtimes
        .iter()
        .map(|(name, package)| {
            let mut versions: Vec<String> = package.versions.keys().cloned().collect();
            versions.sort_by(|a, b| compare_versions(b, a));
            RuntimeChoice { name: name.clone(), description: package.description.clone(), versions }
        })
        .collect();
    Ok(Json(choices))
}

async fn code_server(
    control: Arc<ControlPlane>,
    user: CurrentUser,
    id: i64,
    action: &str,
) -> Result<Json<Value>, ApiError> {
    let server = dev_server(&control, &user, id).await?;
    let agent = super::servers::agent_of(&control, &server)?;
    let answer = agent
        .call(Method::Post, &format!("/dev/codeserver/{action}"), None)
        .await
        .map_err(|e| agent_error(id, e))?;
    let poller = control.poller.clone();
    tokio::spawn(async move { poller.poll_now(id).await });
    Ok(Json(answer))
}

#[utoipa::path(post, path = "/api/dev/{id}/codeserver/start", tag = "dev", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "codeServerInstalled and codeServerRunning"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn code_server_start(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Value>, ApiError> {
    code_server(control, user, id, "start").await
}

#[utoipa::path(post, path = "/api/dev/{id}/codeserver/stop", tag = "dev", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "codeServerInstalled and codeServerRunning"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn code_server_stop(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Value>, ApiError> {
    code_server(control, user, id, "stop").await
}

#[utoipa::path(post, path = "/api/dev/{id}/codeserver/restart", tag = "dev", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "codeServerInstalled and codeServerRunning"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn code_server_restart(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Value>, ApiError> {
    code_server(control, user, id, "restart").await
}

#[utoipa::path(post, path = "/api/dev/{id}/ide-token", tag = "dev", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = IdeLink), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn ide_token(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<IdeLink>, ApiError> {
    let server = dev_server(&control, &user, id).await?;
    if server.lifecycle != Lifecycle::Ready || !server.enable_code_server {
        return Err(ApiError::new(
            zlh_proto::ErrorCode::NotRunning,
            "this dev server has no code-server (create it with enable_code_server)",
        ));
    }
    let ttl = control.config.ide.token_ttl;
    let token = control.ide.issue(user.0.id, id, ttl);
    let url = crate::ide::link(&control, id, &token);
    Ok(Json(IdeLink { token, url, expires_in: ttl.as_secs() }))
}
