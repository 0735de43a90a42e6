//! Server data: backups, files, mods and their jobs, forwarded to the server's agent.
//!
//! The ownership check comes first, before the body is even read, so another user's server is
//! the same 404 whatever was sent. Bodies and answers stream through untouched (uploads and
//! downloads of any size); the agent resolves every path beneath the server root and answers
//! with its own codes (`path_outside_root`, `backup_in_progress`, ...), which pass through.
//! Backups answer in one envelope, `{"ok": true, "data": ...}` or `{"ok": false, "error":
//! {...}}`, with the agent's status kept.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use zlh_http::ApiError;
use zlh_proto::api::{Permission, ServerKind};

use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::activity::Event;
use crate::registry::{Method, Streamed};

use super::console::TicketFor;

/// Largest agent answer the backup envelope reads (lists of backups and jobs).
const MAX_ENVELOPED: usize = 4 << 20;

/// Which part of a server's data a route reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    /// `/api/game/servers/{id}/backups...`: game servers only, enveloped answers.
    Backups,
    /// `/api/servers/{id}/files|mods|jobs...`: streamed through.
    Stream,
}

/// Forwards a request to the agent path that follows the server id in its URL.
async fn forward(
    control: &ControlPlane,
    user: &CurrentUser,
    id: i64,
    request: Request,
    data: Data,
) -> Response {
    let answer = async {
        let (parts, body) = request.into_parts();
        let path = agent_path(&parts.uri).ok_or_else(|| ApiError::not_found("route"))?;
        let need = match (data, path.split(['/', '?']).nth(1)) {
            (Data::Backups, _) => Need::To(Permission::Backups),
            // Job progress (backups, archives) is for anyone who may see the server.
            (_, Some("jobs")) => Need::See,
            _ => Need::To(Permission::Files),
        };
        let server = access::server(control, &user.0, id, need).await?;
        if data == Data::Backups && server.kind != ServerKind::Game {
            return Err(ApiError::not_found("server"));
        }
        let agent = access::agent(control, &server)?;
        let method = match parts.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            _ => return Err(zlh_http::method_not_allowed().await),
        };
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = body.into_data_stream().map_err(std::io::Error::other);
        let answer = agent.forward(method, &path, content_type, Box::pin(body)).await?;
        if method != Method::Get && answer.status < 400 {
            let action = match path.split(['/', '?']).nth(1) {
                Some("files") => "files_changed",
                Some("backups") => "backups_changed",
                Some("mods") => "mods_changed",
                _ => "data_changed",
            };
            let detail = format!("{} {path}", parts.method);
            Event::by(user, action).on(&server).detail(detail).record(control).await;
        }
        Ok(streamed(answer))
    }
    .await;
    match data {
        Data::Stream => answer.unwrap_or_else(IntoResponse::into_response),
        Data::Backups => envelope(answer).await,
    }
}

/// An agent's streamed answer as ours.
fn streamed(answer: Streamed) -> Response {
    let mut response = Response::new(Body::from_stream(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `/api/servers/7/files/content?path=a` → `/files/content?path=a`, still percent-encoded so
/// that the agent judges exactly what the client sent.
fn agent_path(uri: &axum::http::Uri) -> Option<String> {
    let path = uri.path();
    let after = path.strip_prefix("/api/game/servers/").or_else(|| path.strip_prefix("/api/servers/"))?;
    let (_id, rest) = after.split_once('/')?;
    Some(match uri.query() {
        Some(query) => format!("/{rest}?{query}"),
        None => format!("/{rest}"),
    })
}

/// Wraps an answer in the backup envelope, keeping its status.
async fn envelope(answer: Result<Response, ApiError>) -> Response {
    let response = match answer {
        Ok(response) => response,
        Err(error) => return failure(error),
    };
    let status = response.status();
    match axum::body::to_bytes(response.into_body(), MAX_ENVELOPED).await {
        Ok(bytes) => {
            let data: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, Json(json!({ "ok": true, "data": data }))).into_response()
        }
        Err(_) => failure(ApiError::new(
            zlh_proto::ErrorCode::AgentError,
            "the server's agent answered something unexpected",
        )),
    }
}

fn failure(error: ApiError) -> Response {
    let status = error.http_status();
    let detail = zlh_proto::ErrorDetail {
        code: error.code,
        message: error.message,
        state: error.state,
        disk: error.disk,
    };
    (status, Json(json!({ "ok": false, "error": detail }))).into_response()
}

/// One thin, documented handler per route; all of them forward.
macro_rules! forwarded {
    ($($name:ident: $method:ident $path:literal, $tag:literal, $data:expr, $status:literal $what:literal;)*) => {$(
        #[utoipa::path($method, path = $path, tag = $tag, security(("bearer" = [])), params(("id" = i64, Path)),
            responses((status = $status, description = $what), (status = 404, body = zlh_proto::ErrorBody)))]
        pub(super) async fn $name(
            State(control): State<Arc<ControlPlane>>,
            user: CurrentUser,
            ServerId(id): ServerId,
            request: Request,
        ) -> Response {
            forward(&control, &user, id, request, $data).await
        }
    )*};
}

forwarded! {
    backups: get "/api/game/servers/{id}/backups", "backups", Data::Backups, 200
        "The server's backups, oldest first";
    backup_create: post "/api/game/servers/{id}/backups", "backups", Data::Backups, 202
        "A backup job started (body, optional: {\"exclude\": [glob]}); 409 backup_in_progress";
    backup_restore: post "/api/game/servers/{id}/backups/restore", "backups", Data::Backups, 202
        "A restore job started for ?id=<backup id>: verified, then swapped in atomically";
    backup_delete: delete "/api/game/servers/{id}/backups/{backupId}", "backups", Data::Backups, 200
        "The backup was deleted; 409 backup_locked while it is locked";
    backup_change: patch "/api/game/servers/{id}/backups/{backupId}", "backups", Data::Backups, 200
        "Renamed, locked or unlocked ({\"name\", \"locked\"}, both optional); locked backups outlive retention";
    files: get "/api/servers/{id}/files", "files", Data::Stream, 200
        "The entries of the directory ?path=";
    file_delete: delete "/api/servers/{id}/files", "files", Data::Stream, 204
        "?path= was deleted (a directory with &recursive=true)";
    file_download: get "/api/servers/{id}/files/content", "files", Data::Stream, 200
        "The file ?path=, streamed";
    file_upload: put "/api/servers/{id}/files/content", "files", Data::Stream, 201
        "The body was written to ?path= (a temporary file, then renamed); 413 past the limit";
    file_mkdir: post "/api/servers/{id}/files/mkdir", "files", Data::Stream, 201
        "The directory {\"path\"} was made";
    file_rename: post "/api/servers/{id}/files/rename", "files", Data::Stream, 204
        "{\"from\"} was renamed to {\"to\"}";
    file_copy: post "/api/servers/{id}/files/copy", "files", Data::Stream, 201
        "{\"from\"} was copied to {\"to\"}";
    file_chmod: post "/api/servers/{id}/files/chmod", "files", Data::Stream, 204
        "The mode of {\"path\"} is {\"mode\"}";
    file_compress: post "/api/servers/{id}/files/compress", "files", Data::Stream, 202
        "A job packing {\"paths\"} into {\"to\"} (.tar.gz) started";
    file_extract: post "/api/servers/{id}/files/extract", "files", Data::Stream, 202
        "A job unpacking {\"path\"} beneath {\"to\"} started";
    mods: get "/api/servers/{id}/mods", "mods", Data::Stream, 200
        "The server's mods, with names and versions read from their jars";
    mod_install: post "/api/servers/{id}/mods/install", "mods", Data::Stream, 202
        "A job installing {\"name\", \"version\"} from the artifact store (SHA-256 verified) started";
    mod_upload: put "/api/servers/{id}/mods/upload", "mods", Data::Stream, 201
        "The body was stored as the mod ?name=<file>.jar";
    mod_enable: post "/api/servers/{id}/mods/{file}/enable", "mods", Data::Stream, 200
        "The mod is enabled";
    mod_disable: post "/api/servers/{id}/mods/{file}/disable", "mods", Data::Stream, 200
        "The mod is disabled (kept as <file>.disabled)";
    mod_remove: delete "/api/servers/{id}/mods/{file}", "mods", Data::Stream, 204
        "The mod was removed";
    jobs: get "/api/servers/{id}/jobs", "jobs", Data::Stream, 200
        "The server's background jobs (backups, restores, archives, installs) with progress";
    job: get "/api/servers/{id}/jobs/{jobId}", "jobs", Data::Stream, 200
        "One job";
}

#[utoipa::path(post, path = "/api/game/servers/{id}/backups/{backupId}/download", tag = "backups", security(("bearer" = [])),
    params(("id" = i64, Path), ("backupId" = String, Path)),
    responses((status = 200, body = zlh_proto::api::DownloadLink, description = "A single-use link to the archive, for a browser"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn backup_link(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    axum::extract::Path(params): axum::extract::Path<HashMap<String, String>>,
) -> Result<Json<zlh_proto::api::DownloadLink>, ApiError> {
    let server = access::server(&control, &user.0, id, Need::To(Permission::Backups)).await?;
    if server.kind != ServerKind::Game {
        return Err(ApiError::not_found("server"));
    }
    let backup = backup_id(&params)?;
    let url = format!("/api/game/servers/{id}/backups/{backup}/download");
    let store = control.store.as_ref();
    let issued = control.tickets.issue(store, user.0.id, id, &user.1, TicketFor::Download(backup)).await?;
    let ticket = issued.ok_or_else(|| {
        ApiError::new(zlh_proto::ErrorCode::RateLimited, "too many unused links; use the ones you asked for")
    })?;
    Ok(Json(zlh_proto::api::DownloadLink {
        url: format!("{url}?ticket={ticket}"),
        expires_in: control.tickets.ttl().as_secs(),
    }))
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct DownloadQuery {
    ticket: Option<String>,
}

#[utoipa::path(get, path = "/api/game/servers/{id}/backups/{backupId}/download", tag = "backups", security(("bearer" = [])),
    params(("id" = i64, Path), ("backupId" = String, Path), ("ticket" = Option<String>, Query)),
    responses((status = 200, description = "The backup's archive (.tar.zst), streamed"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn backup_download(
    State(control): State<Arc<ControlPlane>>,
    ServerId(id): ServerId,
    axum::extract::Path(params): axum::extract::Path<HashMap<String, String>>,
    query: Result<axum::extract::Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
    user: Result<CurrentUser, ApiError>,
) -> Response {
    let answer = async {
        // A browser's link carries a ticket; an API client signs in as usual.
        let ticket = query.ok().and_then(|q| q.0.ticket);
        let backup = backup_id(&params);
        let user = match ticket {
            Some(ticket) => {
                ticket_holder(&control, &ticket, id, backup.as_deref().unwrap_or_default()).await?
            }
            None => user?.0,
        };
        let server = access::server(&control, &user, id, Need::To(Permission::Backups)).await?;
        if server.kind != ServerKind::Game {
            return Err(ApiError::not_found("server"));
        }
        let agent = access::agent(&control, &server)?;
        let path = format!("/backups/{}/download", backup?);
        let nothing = futures_util::stream::empty::<Result<axum::body::Bytes, std::io::Error>>();
        Ok(streamed(agent.forward(Method::Get, &path, None, Box::pin(nothing)).await?))
    }
    .await;
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// The account a download ticket was issued to, if it is for this backup and its session stands.
async fn ticket_holder(
    control: &ControlPlane,
    ticket: &str,
    id: i64,
    backup: &str,
) -> Result<crate::db::User, ApiError> {
    let invalid = || {
        ApiError::new(
            zlh_proto::ErrorCode::InvalidTicket,
            "this download link was used, has expired or is for another backup",
        )
    };
    let ticket = control.tickets.take(control.store.as_ref(), ticket).await?.ok_or_else(invalid)?;
    if ticket.server_id != id || !ticket.opens(&TicketFor::Download(backup.to_owned())) {
        return Err(invalid());
    }
    if !access::session_lives(control, &ticket.session, ticket.user_id).await {
        return Err(invalid());
    }
    control.store.user_by_id(ticket.user_id).await?.ok_or_else(invalid)
}

/// The `{backupId}` of a route: backup ids are letters, digits and dashes; anything else is
/// no backup (and never reaches a URL unescaped).
fn backup_id(params: &HashMap<String, String>) -> Result<String, ApiError> {
    params
        .get("backupId")
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .cloned()
        .ok_or_else(|| ApiError::not_found("backup"))
}

/// The routes, for the API router.
pub(super) fn routes(router: axum::Router<Arc<ControlPlane>>) -> axum::Router<Arc<ControlPlane>> {
    use axum::routing::{delete, get, post, put};
    router
        .route("/api/game/servers/{id}/backups", get(backups).post(backup_create))
        .route("/api/game/servers/{id}/backups/restore", post(backup_restore))
        .route("/api/game/servers/{id}/backups/{backupId}", delete(backup_delete).patch(backup_change))
        .route("/api/game/servers/{id}/backups/{backupId}/download", get(backup_download).post(backup_link))
        .route("/api/servers/{id}/files", get(files).delete(file_delete))
        .route("/api/servers/{id}/files/content", get(file_download).put(file_upload))
        .route("/api/servers/{id}/files/mkdir", post(file_mkdir))
        .route("/api/servers/{id}/files/rename", post(file_rename))
        .route("/api/servers/{id}/files/copy", post(file_copy))
        .route("/api/servers/{id}/files/chmod", post(file_chmod))
        .route("/api/servers/{id}/files/compress", post(file_compress))
        .route("/api/servers/{id}/files/extract", post(file_extract))
        .route("/api/servers/{id}/mods", get(mods))
        .route("/api/servers/{id}/mods/install", post(mod_install))
        .route("/api/servers/{id}/mods/upload", put(mod_upload))
        .route("/api/servers/{id}/mods/{file}/enable", post(mod_enable))
        .route("/api/servers/{id}/mods/{file}/disable", post(mod_disable))
        .route("/api/servers/{id}/mods/{file}", delete(mod_remove))
        .route("/api/servers/{id}/jobs", get(jobs))
        .route("/api/servers/{id}/jobs/{jobId}", get(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_path_is_what_follows_the_server_id_still_encoded() {
        let path = |uri: &str| agent_path(&uri.parse().expect("uri"));
        assert_eq!(
            path("/api/servers/7/files/content?path=a%2F..%2Fb").as_deref(),
            Some("/files/content?path=a%2F..%2Fb")
        );
        assert_eq!(
            path("/api/game/servers/12/backups/restore?id=x").as_deref(),
            Some("/backups/restore?id=x")
        );
        assert_eq!(path("/api/servers/7/mods/a%2Fb.jar").as_deref(), Some("/mods/a%2Fb.jar"));
        assert_eq!(path("/api/servers/7").as_deref(), None);
    }
}
