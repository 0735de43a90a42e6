//! Setting a game up: its variables (checked against the template's rules, kept by its agent,
//! applied at the next start) and its install step (shown, retried).

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::agent::{GameState, VariableValues};
use zlh_proto::api::{InstallState, InstallView, Permission, SetVariables, VariableView};

use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::activity::Event;
use crate::db::Server;
use crate::registry::Method;
use crate::templates::variables::Variable;

/// The variables of a server's template, or why it has none to show.
fn template_variables(control: &ControlPlane, server: &Server) -> Result<Vec<Variable>, ApiError> {
    let name = server.template.as_deref().unwrap_or_default();
    control.templates.current().variables(name).map(<[Variable]>::to_vec).ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("this server's template {name:?} is no longer offered"))
    })
}

async fn current(control: &ControlPlane, server: &Server) -> Result<Vec<VariableView>, ApiError> {
    let variables = template_variables(control, server)?;
    let agent = access::agent(control, server)?;
    let values: VariableValues = serde_json::from_value(agent.call(Method::Get, "/variables", None).await?)
        .map_err(|_| {
        ApiError::new(ErrorCode::AgentError, "the server's agent answered something unexpected")
    })?;
    Ok(variables
        .iter()
        .filter(|v| v.spec.user_viewable)
        .map(|v| v.view(values.values.get(&v.spec.env).unwrap_or(&v.spec.default)))
        .collect())
}

#[utoipa::path(get, path = "/api/servers/{id}/variables", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = [VariableView]), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn variables(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Vec<VariableView>>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    Ok(Json(current(&control, &server).await?))
}

#[utoipa::path(put, path = "/api/servers/{id}/variables", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = SetVariables,
    responses((status = 200, body = [VariableView], description = "Saved; they apply at the next start"),
        (status = 400, body = zlh_proto::ErrorBody, description = "invalid_variable: a value breaks its rules; nothing was changed"),
        (status = 403, body = zlh_proto::ErrorBody, description = "variable_not_editable"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn set_variables(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    body: axum::extract::Request,
) -> Result<Json<Vec<VariableView>>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    let ApiJson(request) = ApiJson::<SetVariables>::from_request(body, &control).await?;
    let variables = template_variables(&control, &server)?;
    // Every value is checked before any is saved: a request is applied whole or not at all.
    for (env, value) in &request.values {
        let variable = crate::templates::settable(&variables, env)?;
        variable.check(value).map_err(|why| ApiError::new(ErrorCode::InvalidVariable, why))?;
    }
    let agent = access::agent(&control, &server)?;
    let body = serde_json::to_value(VariableValues { values: request.values.clone() })
        .map_err(|_| ApiError::internal())?;
    agent.call(Method::Put, "/variables", Some(body)).await?;
    let names: Vec<&str> = request.values.keys().map(String::as_str).collect();
    Event::by(&user, "variables_changed").on(&server).detail(names.join(", ")).record(&control).await;
    Ok(Json(current(&control, &server).await?))
}

#[utoipa::path(get, path = "/api/servers/{id}/install", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = InstallView), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn install(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<InstallView>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Console)).await?;
    Ok(Json(crate::install::view(&control, &server)))
}

#[utoipa::path(post, path = "/api/servers/{id}/install", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)),
    responses((status = 202, body = InstallView, description = "The install step runs again (the server stays stopped)"),
        (status = 409, body = zlh_proto::ErrorBody, description = "install_in_progress, or already_running: stop it first"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn reinstall(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<(StatusCode, Json<InstallView>), ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    if server.install == Some(InstallState::Installing) {
        return Err(ApiError::new(ErrorCode::InstallInProgress, "the install step is running"));
    }
    let name = server.template.as_deref().unwrap_or_default();
    let Some(step) = control.templates.current().install_step(name) else {
        return Err(ApiError::new(ErrorCode::BadRequest, "this server's template has no install step"));
    };
    let agent = access::agent(&control, &server)?;
    let state = agent.status().await?.state;
    if !matches!(state, GameState::Stopped | GameState::Crashed | GameState::Error) {
        return Err(ApiError::new(ErrorCode::AlreadyRunning, "stop the server before installing it again")
            .with_state(state));
    }
    if !crate::install::begin(&control, id, step, false).await? {
        return Err(ApiError::new(ErrorCode::InstallInProgress, "the install step is running"));
    }
    Event::by(&user, "install_started").on(&server).record(&control).await;
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    Ok((StatusCode::ACCEPTED, Json(crate::install::view(&control, &server))))
}

/// Why a server cannot start yet, if its install step is running or failed.
pub(super) fn installed(server: &Server) -> Result<(), ApiError> {
    match server.install {
        None => Ok(()),
        Some(InstallState::Installing) => Err(ApiError::new(
            ErrorCode::InstallInProgress,
            "the server is being installed; it can start when that is done",
        )),
        Some(InstallState::Failed) => Err(ApiError::new(
            ErrorCode::InstallFailed,
            format!(
                "the install step failed ({}); retry it with POST /api/servers/{}/install",
                server.install_message.as_deref().unwrap_or("no reason recorded"),
                server.id
            ),
        )),
    }
}
