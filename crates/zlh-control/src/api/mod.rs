//! The public API under `/api`, plus `/health` and `/metrics`.
//!
//! API Boundary: routes and bodies (`zlh_proto::api`) are the contract with the portal and API
//! clients; `/api/openapi.json` documents them from the handlers' own annotations.
//! Architecture Invariant: every route that takes a server id resolves it with
//! [`owned_server`], so another user's server is a 404, indistinguishable from none.

mod admin;
mod auth;
mod console;
mod data;
mod dev;
mod openapi;
mod servers;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::routing::{any, get, post};
use axum::{Json, Router, middleware};
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::api::{Role, ServerView, UserView};

use crate::ControlPlane;
use crate::auth::tokens::TokenError;
use crate::db::{Server, User};
use crate::registry::AgentError;
use zlh_proto::time::{format_ms, now_secs};

pub use console::TicketBook;

/// Every route of the control plane.
pub fn router(control: Arc<ControlPlane>) -> Router {
    let api = data::routes(Router::new())
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/auth/password", post(auth::change_password))
        .route("/api/auth/password-reset/request", post(auth::request_reset))
        .route("/api/auth/password-reset/confirm", post(auth::confirm_reset))
        .route("/api/templates", get(servers::templates))
        .route("/api/servers", get(servers::list).post(servers::create))
        .route("/api/servers/{id}", get(servers::get).delete(servers::delete))
        .route("/api/servers/{id}/status", get(servers::status))
        .route("/api/servers/{id}/start", post(servers::start))
        .route("/api/servers/{id}/stop", post(servers::stop))
        .route("/api/servers/{id}/restart", post(servers::restart))
        .route("/api/servers/{id}/crashes", get(servers::crashes))
        .route("/api/servers/{id}/console/command", post(servers::console_command))
        .route("/api/servers/{id}/console/ticket", post(console::ticket))
        .route("/api/servers/{id}/console", get(console::socket))
        .route("/api/dev/runtimes", get(dev::runtimes))
        .route("/api/dev/{id}/codeserver/start", post(dev::code_server_start))
        .route("/api/dev/{id}/codeserver/stop", post(dev::code_server_stop))
        .route("/api/dev/{id}/codeserver/restart", post(dev::code_server_restart))
        .route("/api/dev/{id}/ide-token", post(dev::ide_token))
        .route("/api/dev/{id}/ide", get(crate::ide::path_form))
        .route("/__ide/{id}", any(crate::ide::path_form))
        // `{*rest}` matches only a non-empty rest: the IDE's root needs its own route.
        .route("/__ide/{id}/", any(crate::ide::path_form))
        .route("/__ide/{id}/{*rest}", any(crate::ide::path_form))
        .route("/artifacts/{*path}", get(artifact))
        .route("/api/admin/users", get(admin::users))
        .route("/api/admin/users/{userId}/suspend", post(admin::suspend))
        .route("/api/admin/users/{userId}/unsuspend", post(admin::unsuspend))
        .route("/api/openapi.json", get(openapi::document))
        .route("/", get(crate::portal::page))
        .route("/reset-password", get(crate::portal::page))
        .route("/portal/{*file}", get(crate::portal::asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&control.metrics),
            crate::metrics::track_requests,
        ));
    api.fallback(zlh_http::not_found)
        .method_not_allowed_fallback(zlh_http::method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&control), crate::ide::hosted))
        .layer(middleware::from_fn(zlh_http::close_when_body_unread))
        .with_state(control)
}

/// `GET /artifacts/...`: the artifact store, streamed from disk (public: runtimes are not
/// secrets, and agents fetch them without credentials).
async fn artifact(
    State(control): State<Arc<ControlPlane>>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let file = control.artifacts.file(&path).ok_or_else(|| ApiError::not_found("artifact"))?;
    let opened = tokio::fs::File::open(&file).await.map_err(|_| ApiError::not_found("artifact"))?;
    let length = opened.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(opened, 256 * 1024));
    let mut response = axum::response::Response::new(body);
    response.headers_mut().insert(axum::http::header::CONTENT_LENGTH, length.into());
    Ok(response)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn metrics(State(control): State<Arc<ControlPlane>>) -> String {
    let counts = control.cache.count_by_state().await;
    control.metrics.render(&counts)
}

/// The signed-in user, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<Arc<ControlPlane>> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &Arc<ControlPlane>,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "sign in first: send Authorization: Bearer <access token>",
                )
            })?;
        let claims = control.signer.verify(token, "access", now_secs()).map_err(|e| match e {
            TokenError::Expired => {
                ApiError::new(ErrorCode::TokenExpired, "the access token has expired; refresh it")
            }
            TokenError::Invalid => {
                ApiError::new(ErrorCode::TokenInvalid, "the access token is not valid; sign in again")
            }
        })?;
        let ended = || ApiError::new(ErrorCode::TokenInvalid, "this session has ended; sign in again");
        let session = claims.sid.as_deref().ok_or_else(ended)?;
        let user = control.store.session_user(session).await.map_err(store_error)?.ok_or_else(ended)?;
        if user.id.to_string() != claims.sub {
            return Err(ended());
        }
        if user.suspended_at_ms.is_some() {
            return Err(ApiError::new(
                ErrorCode::AccountSuspended,
                "this account is suspended; contact the operator",
            ));
        }
        Ok(CurrentUser(user))
    }
}

/// The `{id}` of a server route. Anything that is not a server id is a 404, like a server that
/// does not exist or is not yours.
#[derive(Debug, Clone, Copy)]
pub struct ServerId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ServerId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A map, so that routes with more parameters than the id (`/backups/{backupId}`) work too.
        let axum::extract::Path(params) =
            axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(
                parts, state,
            )
            .await
            .map_err(|_| ApiError::not_found("server"))?;
        params
            .get("id")
            .and_then(|raw| raw.parse().ok())
            .map(ServerId)
            .ok_or_else(|| ApiError::not_found("server"))
    }
}

impl CurrentUser {
    fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}

/// A server the user may see: their own, or any for an admin. Anything else is a 404.
async fn owned_server(
    control: &ControlPlane,
    user: &CurrentUser,
    server_id: i64,
) -> Result<Server, ApiError> {
    match control.store.server(server_id).await.map_err(store_error)? {
        Some(server) if server.owner_id == user.0.id || user.is_admin() => Ok(server),
        _ => Err(ApiError::not_found("server")),
    }
}

/// A storage failure: logged with its details, answered without them.
pub(crate) fn store_error(error: crate::db::StoreError) -> ApiError {
    tracing::error!(%error, "storage failed");
    ApiError::internal()
}

/// An agent failure, as the browser may see it.
fn agent_error(server_id: i64, error: AgentError) -> ApiError {
    let message = error.to_string();
    match error {
        AgentError::Unreachable => ApiError::new(ErrorCode::AgentUnreachable, message),
        AgentError::Timeout => ApiError::new(ErrorCode::AgentTimeout, message),
        AgentError::AuthFailed => {
            tracing::error!(server_id, "the agent refused the control plane's secret");
            ApiError::new(ErrorCode::AgentAuthFailed, message)
        }
        AgentError::Unsupported => ApiError::new(ErrorCode::AgentUnsupported, message),
        // The agent's own refusals, and a full disk, which the user can act on.
        AgentError::Upstream { status, body }
            if (400..500).contains(&status) || body.error.code == ErrorCode::InsufficientStorage =>
        {
            ApiError::passthrough(status, body)
        }
        AgentError::Upstream { body, .. } => {
            ApiError::new(ErrorCode::AgentError, format!("the server's agent failed: {}", body.error.message))
        }
        AgentError::Protocol => ApiError::new(ErrorCode::AgentError, message),
    }
}

fn user_view(user: &User) -> UserView {
    UserView {
        id: user.id,
        email: user.email.clone(),
        role: user.role,
        created_at: format_ms(user.created_at_ms),
        suspended: user.suspended_at_ms.is_some(),
    }
}

async fn server_views(control: &ControlPlane, servers: &[Server]) -> Vec<ServerView> {
    let ids: Vec<i64> = servers.iter().map(|s| s.id).collect();
    let mut statuses = control.cache.get_many(&ids).await;
    servers
        .iter()
        .map(|server| ServerView {
            id: server.id,
            name: server.name.clone(),
            kind: server.kind,
            template: server.template.clone(),
            runtime: server.runtime.clone(),
            version: server.runtime_version.clone(),
            enable_code_server: server.enable_code_server,
            owner_id: server.owner_id,
            created_at: format_ms(server.created_at_ms),
            lifecycle: server.lifecycle,
            status: statuses.remove(&server.id).unwrap_or_else(crate::cache::waiting),
        })
        .collect()
}
