//! The public API under `/api`, plus `/health` and `/metrics`.
//!
//! API Boundary: routes and bodies (`zlh_proto::api`) are the contract with the portal and API
//! clients; `/api/openapi.json` documents them from the handlers' own annotations.
//! Architecture Invariant: every route that takes a server id resolves it through
//! [`crate::access`], so another user's server is a 404, indistinguishable from none.

mod admin;
mod artifacts;
mod auth;
mod console;
mod data;
mod dev;
mod members;
pub(crate) mod openapi;
mod schedules;
mod servers;
mod setup;
mod templates;
mod two_factor;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use zlh_http::ApiError;
use zlh_proto::api::{ServerStatus, ServerView, UserView};
use zlh_proto::time::format_ms;

use crate::ControlPlane;
use crate::db::{Server, User};

pub use console::TicketBook;

/// The API's routes, the portal's pages and the artifact store.
pub(crate) fn routes() -> Router<Arc<ControlPlane>> {
    data::routes(Router::new())
        .route("/api/auth/registration", get(auth::registration))
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/verify-email", post(auth::verify_email))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/refresh", post(auth::refresh))
        .route("/api/auth/logout", post(auth::logout))
        .route("/api/auth/me", get(auth::me))
        .route("/api/account/activity", get(auth::activity))
        .route("/api/account/api-keys", get(auth::api_keys).post(auth::create_api_key))
        .route("/api/account/api-keys/{keyId}", axum::routing::delete(auth::revoke_api_key))
        .route("/api/account/totp", get(two_factor::status).post(two_factor::begin))
        .route("/api/account/totp/confirm", post(two_factor::confirm))
        .route("/api/account/totp/recovery-codes", post(two_factor::recovery_codes))
        .route("/api/account/totp/disable", post(two_factor::disable))
        .route("/api/auth/password", post(auth::change_password))
        .route("/api/auth/password-reset/request", post(auth::request_reset))
        .route("/api/auth/password-reset/confirm", post(auth::confirm_reset))
        .route("/api/templates", get(servers::templates))
        .route("/api/servers", get(servers::list).post(servers::create))
        .route("/api/servers/{id}", get(servers::get).delete(servers::delete))
        .route("/api/servers/{id}/status", get(servers::status))
        .route("/api/servers/{id}/activity", get(servers::activity))
        .route("/api/servers/{id}/limits", axum::routing::patch(servers::limits))
        .route("/api/servers/{id}/start", post(servers::start))
        .route("/api/servers/{id}/stop", post(servers::stop))
        .route("/api/servers/{id}/restart", post(servers::restart))
        .route("/api/servers/{id}/kill", post(servers::kill))
        .route("/api/servers/{id}/crashes", get(servers::crashes))
        .route("/api/servers/{id}/variables", get(setup::variables).put(setup::set_variables))
        .route("/api/servers/{id}/install", get(setup::install).post(setup::reinstall))
        .route("/api/servers/{id}/members", get(members::list).post(members::invite))
        .route(
            "/api/servers/{id}/members/{memberId}",
            axum::routing::put(members::change).delete(members::remove),
        )
        .route("/api/servers/{id}/schedules", get(schedules::list).post(schedules::create))
        .route(
            "/api/servers/{id}/schedules/{scheduleId}",
            axum::routing::put(schedules::replace).delete(schedules::remove),
        )
        .route("/api/servers/{id}/schedules/{scheduleId}/run", post(schedules::run_now))
        .route("/api/servers/{id}/console/command", post(servers::console_command))
        .route("/api/servers/{id}/console/ticket", post(console::ticket))
        .route("/api/servers/{id}/console", get(console::socket))
        .route("/api/dev/runtimes", get(dev::runtimes))
        .route("/api/dev/{id}/codeserver/start", post(dev::code_server_start))
        .route("/api/dev/{id}/codeserver/stop", post(dev::code_server_stop))
        .route("/api/dev/{id}/codeserver/restart", post(dev::code_server_restart))
        .route("/artifacts/{*path}", get(artifact))
        .route("/api/admin/users", get(admin::users).post(admin::create_user))
        .route(
            "/api/admin/users/{userId}",
            axum::routing::patch(admin::change_role).delete(admin::delete_user),
        )
        .route("/api/admin/users/{userId}/suspend", post(admin::suspend))
        .route("/api/admin/users/{userId}/unsuspend", post(admin::unsuspend))
        .route("/api/admin/users/{userId}/activity", get(admin::activity))
        .route("/api/admin/users/{userId}/reset-two-factor", post(admin::reset_two_factor))
        .route("/api/admin/settings", get(admin::settings).put(admin::change_settings))
        .route("/api/admin/artifacts", get(artifacts::list))
        .route(
            "/api/admin/artifacts/{kind}/{name}/{version}",
            axum::routing::put(artifacts::put).delete(artifacts::remove),
        )
        .route("/api/admin/templates", get(templates::list))
        .route("/api/admin/templates/import", post(templates::import))
        .route(
            "/api/admin/templates/{name}",
            get(templates::show).put(templates::put).delete(templates::remove),
        )
        .route("/api/admin/templates/{name}/restore", post(templates::restore))
        .route("/", get(crate::portal::page))
        .route("/reset-password", get(crate::portal::page))
        .route("/verify-email", get(crate::portal::page))
        .route("/portal/{*file}", get(crate::portal::asset))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// A name people give something (a server, an API key), trimmed: 1 to 64 printable characters.
fn display_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            zlh_proto::ErrorCode::BadRequest,
            "name must be 1 to 64 printable characters",
        ));
    }
    Ok(name)
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

/// `GET /health`: 200 while this replica takes requests, 503 once it is stopping (so a load
/// balancer sends new ones elsewhere).
async fn health(State(control): State<Arc<ControlPlane>>) -> (StatusCode, Json<serde_json::Value>) {
    let (status, word) = match control.drain.phase() {
        crate::drain::Phase::Serving => (StatusCode::OK, "ok"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "stopping"),
    };
    (status, Json(serde_json::json!({ "status": word, "version": env!("CARGO_PKG_VERSION") })))
}

/// `GET /metrics`, for a scraper with the configured token; without one configured, there is
/// no such route.
async fn metrics(
    State(control): State<Arc<ControlPlane>>,
    headers: axum::http::HeaderMap,
) -> Result<String, ApiError> {
    let Some(token) = &control.config.metrics.token else {
        return Err(ApiError::new(zlh_proto::ErrorCode::NotFound, "no such route"));
    };
    let sent = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compared as digests: equal lengths, and no early exit on the first differing byte.
    use sha2::Digest;
    if sha2::Sha256::digest(sent) != sha2::Sha256::digest(token.expose()) {
        return Err(ApiError::new(
            zlh_proto::ErrorCode::Unauthorized,
            "send the metrics token: Authorization: Bearer <token>",
        ));
    }
    let counts = control.cache.count_by_state().await;
    let usage = control.cache.usage().await;
    let polled = control.registry.ids().into_iter().filter(|id| control.cluster.owns(*id)).count();
    Ok(control.metrics.render(&counts, &usage, polled))
}

fn user_view(user: &User) -> UserView {
    UserView {
        id: user.id,
        email: user.email.clone(),
        role: user.role,
        created_at: format_ms(user.created_at_ms),
        suspended: user.suspended_at_ms.is_some(),
        email_verified: user.email_verified_at_ms.is_some(),
        two_factor: user.has_two_factor(),
        password_generated: user.password_generated,
    }
}

/// A status as a browser may see it: no process ids of the host, and paths as they are inside
/// the server.
fn shown(control: &ControlPlane, server: &Server, mut status: ServerStatus) -> ServerStatus {
    if let Some(detail) = &mut status.detail {
        detail.pid = None;
        detail.agent.pid = 0;
        let driver = control.drivers.by_name(&server.driver);
        for path in [&mut detail.server_root, &mut detail.workspace_root].into_iter().flatten() {
            *path = driver.shown_path(server.id, path);
        }
    }
    status
}

/// Servers as `viewer` sees them (with what they may do on each).
async fn server_views(
    control: &ControlPlane,
    viewer: &User,
    servers: &[Server],
) -> Result<Vec<ServerView>, ApiError> {
    let mut permissions = Vec::with_capacity(servers.len());
    for server in servers {
        permissions.push(crate::access::permissions(control, viewer, server).await?.unwrap_or_default());
    }
    let ids: Vec<i64> = servers.iter().map(|s| s.id).collect();
    let nodes: std::collections::HashMap<i64, String> =
        control.store.nodes().await?.into_iter().map(|node| (node.id, node.name)).collect();
    let mut statuses = control.cache.get_many(&ids).await;
    let mut ports = control.store.ports(&ids).await?;
    Ok(servers
        .iter()
        .zip(permissions)
        .map(|(server, permissions)| {
            let ports = ports.remove(&server.id);
            let address = ports.as_ref().and_then(|p| {
                let first = p.ports.first()?;
                Some(format!("{}:{}", p.public_address, first.port))
            });
            ServerView {
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
                status: shown(
                    control,
                    server,
                    statuses.remove(&server.id).unwrap_or_else(crate::cache::waiting),
                ),
                ports: ports.map(|p| p.ports).unwrap_or_default(),
                address,
                limits: server.limits,
                install: server.install,
                node: server.node_id.and_then(|id| nodes.get(&id).cloned()),
                permissions,
            }
        })
        .collect())
}
