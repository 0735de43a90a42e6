//! `/api/servers/*` and `/api/templates`: servers, their status, power and console commands.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::agent::{ConsoleCommand, CrashHistory, GameState, PowerAccepted};
use zlh_proto::api::{
    CreateServer, Lifecycle, LimitsRequest, Permission, ServerStatus, ServerView, TemplateView,
};

use super::server_views;
use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::activity::Event;
use crate::registry::PowerAction;

#[utoipa::path(get, path = "/api/templates", tag = "servers", responses((status = 200, body = Vec<TemplateView>)))]
pub(super) async fn templates(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Json<Vec<TemplateView>> {
    let mut templates = control.templates.current().list();
    // Only admins may run a command of their own.
    templates.retain(|t| user.is_admin() || t.name != crate::templates::CUSTOM);
    Json(templates)
}

#[utoipa::path(get, path = "/api/servers", tag = "servers", security(("bearer" = [])),
    responses((status = 200, body = Vec<ServerView>, description = "Your servers and those shared with you (an admin's: everyone's), with cached status")))]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<ServerView>>, ApiError> {
    let owner = (!user.is_admin()).then_some(user.0.id);
    let mut servers = control.store.servers(owner).await?;
    if owner.is_some() {
        if user.0.email_verified_at_ms.is_some() {
            servers.extend(control.store.shared_servers(&user.0.email).await?);
        }
        servers.sort_by_key(|server| server.id);
    }
    Ok(Json(server_views(&control, &user.0, &servers).await?))
}

#[utoipa::path(post, path = "/api/servers", tag = "servers", security(("bearer" = [])), request_body = CreateServer,
    responses((status = 201, body = ServerView, description = "Created, and its agent reported ready"),
        (status = 502, body = zlh_proto::ErrorBody, description = "provisioning_failed: cleaned up"),
        (status = 504, body = zlh_proto::ErrorBody, description = "provisioning_timeout: cleaned up")))]
pub(super) async fn create(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<CreateServer>,
) -> Result<(StatusCode, Json<ServerView>), ApiError> {
    super::display_name(&request.name)?;
    let server = crate::provision::create(&control, &user.0, &request).await?;
    Event::by(&user, "server_created").on(&server).detail(server.name.clone()).record(&control).await;
    let view = server_views(&control, &user.0, &[server]).await?.remove(0);
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/servers/{id}", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ServerView), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn get(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<ServerView>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::See).await?;
    Ok(Json(server_views(&control, &user.0, &[server]).await?.remove(0)))
}

#[utoipa::path(delete, path = "/api/servers/{id}", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204, description = "Stopped and removed"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn delete(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<StatusCode, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    if server.lifecycle == Lifecycle::Provisioning {
        return Err(ApiError::new(
            ErrorCode::PowerActionInProgress,
            "the server is still being created; try again when it is ready",
        ));
    }
    crate::provision::delete(&control, id).await?;
    Event::by(&user, "server_deleted").on(&server).detail(server.name.clone()).record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(patch, path = "/api/servers/{id}/limits", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = LimitsRequest,
    responses((status = 200, body = ServerView, description = "The new limits hold now where the engine allows, and at every later start"),
        (status = 400, body = zlh_proto::ErrorBody, description = "invalid_limits: outside what the operator allows"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn limits(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    body: axum::extract::Request,
) -> Result<Json<ServerView>, ApiError> {
    // Whose server it is comes first, before the body is read: another user's is a 404 whatever
    // was sent.
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    let ApiJson(request) = ApiJson::<LimitsRequest>::from_request(body, &control).await?;
    let limits = crate::provision::change_limits(&control, &server, &request).await?;
    let detail = serde_json::to_string(&limits).unwrap_or_default();
    Event::by(&user, "limits_changed").on(&server).detail(detail).record(&control).await;
    let server = access::server(&control, &user.0, id, Need::To(Permission::Manage)).await?;
    Ok(Json(server_views(&control, &user.0, &[server]).await?.remove(0)))
}

#[utoipa::path(get, path = "/api/servers/{id}/activity", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = [zlh_proto::api::ActivityEntry]), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn activity(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Vec<zlh_proto::api::ActivityEntry>>, ApiError> {
    access::server(&control, &user.0, id, Need::See).await?;
    Ok(Json(control.store.activity(None, Some(id), super::auth::ACTIVITY_ENTRIES).await?))
}

#[utoipa::path(get, path = "/api/servers/{id}/status", tag = "servers", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = ServerStatus), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn status(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<ServerStatus>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::See).await?;
    Ok(Json(server_views(&control, &user.0, &[server]).await?.remove(0).status))
}

async fn power(
    control: Arc<ControlPlane>,
    user: CurrentUser,
    id: i64,
    action: PowerAction,
) -> Result<(StatusCode, Json<PowerAccepted>), ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Power)).await?;
    if matches!(action, PowerAction::Start | PowerAction::Restart) {
        super::setup::installed(&server)?;
    }
    let agent = access::agent(&control, &server)?;
    let accepted = agent.power(action).await?;
    tracing::info!(server_id = id, user_id = user.0.id, ?action, state = %accepted.state, "power action");
    Event::by(&user, "power").on(&server).detail(format!("{action:?}").to_lowercase()).record(&control).await;
    // The cache follows the action as it settles, rather than at the next heartbeat.
    let poller = control.poller.clone();
    tokio::spawn(async move { poller.follow(id).await });
    let status = match accepted.state {
        GameState::Starting | GameState::Stopping => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(accepted)))
}

#[utoipa::path(post, path = "/api/servers/{id}/start", tag = "power", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 202, body = PowerAccepted), (status = 409, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn start(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<(StatusCode, Json<PowerAccepted>), ApiError> {
    power(control, user, id, PowerAction::Start).await
}

#[utoipa::path(post, path = "/api/servers/{id}/stop", tag = "power", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 202, body = PowerAccepted), (status = 409, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn stop(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<(StatusCode, Json<PowerAccepted>), ApiError> {
    power(control, user, id, PowerAction::Stop).await
}

#[utoipa::path(post, path = "/api/servers/{id}/restart", tag = "power", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 202, body = PowerAccepted), (status = 409, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn restart(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<(StatusCode, Json<PowerAccepted>), ApiError> {
    power(control, user, id, PowerAction::Restart).await
}

#[utoipa::path(post, path = "/api/servers/{id}/kill", tag = "power", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 202, body = PowerAccepted, description = "SIGKILL sent; it ends stopped"), (status = 409, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn kill(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<(StatusCode, Json<PowerAccepted>), ApiError> {
    power(control, user, id, PowerAction::Kill).await
}

#[utoipa::path(post, path = "/api/servers/{id}/console/command", tag = "console", security(("bearer" = [])), params(("id" = i64, Path)),
    request_body = ConsoleCommand, responses((status = 202), (status = 409, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn console_command(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    ApiJson(command): ApiJson<ConsoleCommand>,
) -> Result<StatusCode, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Console)).await?;
    let agent = access::agent(&control, &server)?;
    agent.console_command(&command.command).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/api/servers/{id}/crashes", tag = "servers", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = CrashHistory), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn crashes(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<CrashHistory>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Console)).await?;
    let agent = access::agent(&control, &server)?;
    Ok(Json(agent.crashes().await?))
}
