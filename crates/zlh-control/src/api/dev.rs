//! `/api/dev/*`: the runtime catalog and code-server controls of dev servers (their IDE links
//! are the IDE's own routes, in `ide/`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use zlh_http::ApiError;
use zlh_proto::api::RuntimeChoice;
use zlh_proto::catalog::compare_versions;

use crate::ControlPlane;
use crate::access::{self, CurrentUser, ServerId};
use crate::registry::Method;

#[utoipa::path(get, path = "/api/dev/runtimes", tag = "dev", security(("bearer" = [])),
    responses((status = 200, body = Vec<RuntimeChoice>, description = "What dev servers can be created with")))]
pub(super) async fn runtimes(
    State(control): State<Arc<ControlPlane>>,
    _user: CurrentUser,
) -> Result<Json<Vec<RuntimeChoice>>, ApiError> {
    let catalog = control.catalog().await?;
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
    let server =
        access::dev_server(&control, &user.0, id, access::Need::To(zlh_proto::api::Permission::Ide)).await?;
    let agent = access::agent(&control, &server)?;
    let answer = agent.call(Method::Post, &format!("/dev/codeserver/{action}"), None).await?;
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
