//! The console through the control plane: browser ↔ control plane ↔ agent.
//!
//! Browsers cannot set headers on a WebSocket, so the upgrade is authenticated with a ticket:
//! `POST /api/servers/{id}/console/ticket` (with the bearer token) returns a random, single-use
//! ticket valid for seconds, bound to the user and the server; `GET /api/servers/{id}/console
//! ?ticket=...&since=N` spends it. The `Origin` of every upgrade must be the portal's own (or
//! one the operator allowed), so another site cannot open a console with a user's cookies or
//! a leaked ticket. `since` is passed through to the agent, so resuming works end to end.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::api::{ConsoleTicket, Permission};
use zlh_proto::time::now_ms;

use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::auth::{random_token, token_hash};
use crate::config::ControlConfig;
use crate::db::{Store, StoredTicket};
use crate::registry::{ConsoleFrame, ConsoleSink, ConsoleStream};

/// What a ticket opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TicketFor {
    /// The server's console.
    Console,
    /// The download of one backup (a browser's link cannot carry the portal's header).
    Download(String),
}

impl TicketFor {
    fn stored(&self) -> String {
        match self {
            TicketFor::Console => "console".to_owned(),
            TicketFor::Download(backup) => format!("download:{backup}"),
        }
    }
}

/// A spent ticket: whose it was and what for.
#[derive(Debug, Clone)]
pub(super) struct Ticket {
    pub(super) user_id: i64,
    pub(super) server_id: i64,
    /// The session that asked for it: what it opens lives no longer than it.
    pub(super) session: String,
    purpose: String,
}

impl Ticket {
    /// Whether it was issued for `what`.
    pub(super) fn opens(&self, what: &TicketFor) -> bool {
        self.purpose == what.stored()
    }
}

/// Unspent tickets one user may hold (a browser needs one per console it opens).
const MAX_UNSPENT: i64 = 20;

/// Single-use tickets, kept in the store (as hashes) so that any control plane on the database
/// redeems what another issued, exactly once.
#[derive(Debug)]
pub struct TicketBook {
    ttl: Duration,
}

impl TicketBook {
    /// A book whose tickets live `ttl`.
    pub fn new(ttl: Duration) -> TicketBook {
        TicketBook { ttl }
    }

    /// How long its tickets live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A ticket for `user_id` on `server_id`; `None` while the user holds `MAX_UNSPENT` unspent
    /// ones (a loop asking for tickets would otherwise grow the book without bound).
    pub(super) async fn issue(
        &self,
        store: &dyn Store,
        user_id: i64,
        server_id: i64,
        session: &str,
        what: TicketFor,
    ) -> Result<Option<String>, ApiError> {
        let ticket = random_token(24);
        let now = now_ms();
        let stored = StoredTicket {
            user_id,
            server_id,
            session_id: session.to_owned(),
            purpose: what.stored(),
            expires_at_ms: now + i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2),
        };
        let issued = store.issue_ticket(&token_hash(&ticket), &stored, MAX_UNSPENT, now).await?;
        Ok(issued.then_some(ticket))
    }

    /// Spends a ticket: it works once, before it expires.
    pub(super) async fn take(&self, store: &dyn Store, ticket: &str) -> Result<Option<Ticket>, ApiError> {
        let taken = store.take_ticket(&token_hash(ticket), now_ms()).await?;
        Ok(taken.map(|t| Ticket {
            user_id: t.user_id,
            server_id: t.server_id,
            session: t.session_id,
            purpose: t.purpose,
        }))
    }
}

#[utoipa::path(post, path = "/api/servers/{id}/console/ticket", tag = "console", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = ConsoleTicket), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn ticket(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<ConsoleTicket>, ApiError> {
    access::server(&control, &user.0, id, Need::To(Permission::Console)).await?;
    let issued =
        control.tickets.issue(control.store.as_ref(), user.0.id, id, &user.1, TicketFor::Console).await?;
    let ticket = issued.ok_or_else(|| {
        ApiError::new(
            ErrorCode::RateLimited,
            "too many unused console tickets; open the consoles you asked for",
        )
    })?;
    Ok(Json(ConsoleTicket { ticket, expires_in: control.tickets.ttl.as_secs() }))
}

#[derive(Deserialize)]
pub(super) struct ConsoleQuery {
    ticket: Option<String>,
    since: Option<u64>,
}

/// Origins allowed to open consoles: the public URL's (both spellings of loopback), and the
/// configured ones. A request without `Origin` is not from a browser page and passes.
fn origin_allowed(config: &ControlConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|o| o.to_str().ok()) else { return true };
    let public = config.public_url();
    let mut allowed = vec![public.clone()];
    for (a, b) in [("127.0.0.1", "localhost"), ("localhost", "127.0.0.1")] {
        if public.contains(&format!("//{a}")) {
            allowed.push(public.replacen(&format!("//{a}"), &format!("//{b}"), 1));
        }
    }
    allowed.extend(config.console.allowed_origins.iter().map(|o| o.trim_end_matches('/').to_owned()));
    allowed.iter().any(|a| a == origin.trim_end_matches('/'))
}

#[utoipa::path(get, path = "/api/servers/{id}/console", tag = "console",
    params(("id" = i64, Path), ("ticket" = String, Query), ("since" = Option<u64>, Query)),
    responses((status = 101, description = "WebSocket: the agent's console protocol (zlh_proto::console)"),
        (status = 401, body = zlh_proto::ErrorBody), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn socket(
    State(control): State<Arc<ControlPlane>>,
    ServerId(id): ServerId,
    query: Result<Query<ConsoleQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match open(&control, id, query, &headers).await {
        Err(error) => error.into_response(),
        Ok((sink, stream, ticket)) => match upgrade {
            Ok(upgrade) => {
                let limit = zlh_proto::console::MAX_VIEWER_MESSAGE;
                upgrade
                    .max_message_size(limit)
                    .max_frame_size(limit)
                    .on_upgrade(move |socket| relay(control, ticket, socket, (sink, stream)))
            }
            Err(_) => ApiError::new(
                ErrorCode::BadRequest,
                "this route is a WebSocket: connect with an upgrade request",
            )
            .into_response(),
        },
    }
}

async fn open(
    control: &ControlPlane,
    id: i64,
    query: Result<Query<ConsoleQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
) -> Result<(ConsoleSink, ConsoleStream, Ticket), ApiError> {
    if !origin_allowed(&control.config, headers) {
        tracing::warn!(server_id = id, "console upgrade from a foreign origin refused");
        return Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            "consoles open only from the portal's own pages",
        ));
    }
    let Ok(Query(query)) = query else {
        return Err(ApiError::new(ErrorCode::BadRequest, "since must be a non-negative integer offset"));
    };
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidTicket,
            "the console ticket is missing, used, expired or for another server",
        )
    };
    let presented = query.ticket.as_deref().ok_or_else(invalid)?;
    let ticket = control.tickets.take(control.store.as_ref(), presented).await?.ok_or_else(invalid)?;
    if ticket.server_id != id || !ticket.opens(&TicketFor::Console) {
        return Err(invalid());
    }
    // The user may have lost the server or the account since the ticket was issued.
    let user = control.store.user_by_id(ticket.user_id).await?.ok_or_else(invalid)?;
    if user.suspended_at_ms.is_some() {
        return Err(invalid());
    }
    if !access::session_lives(control, &ticket.session, user.id).await {
        return Err(invalid());
    }
    let server = access::server(control, &user, id, Need::To(Permission::Console)).await?;
    let agent = control.registry.get(server.id).ok_or(crate::registry::AgentError::Unreachable)?;
    let (sink, stream) = agent.console(query.since).await?;
    Ok((sink, stream, ticket))
}

/// Copies frames both ways until either side closes, or the session that opened the console
/// ends (sign-out, password change, suspension) or its account loses the console permission
/// (close code `CLOSE_SESSION_ENDED`), or this replica stops (`CLOSE_RESTARTING`). A slow
/// browser slows only its own relay (and then the agent drops it like any stalled viewer).
async fn relay(
    control: Arc<ControlPlane>,
    ticket: Ticket,
    socket: WebSocket,
    (mut agent_sink, mut agent_stream): (ConsoleSink, ConsoleStream),
) {
    let (mut browser_sink, mut browser_stream) = socket.split();
    let mut revocations = control.revocations.watch();
    let mut open = control.drain.socket();
    let need = Need::To(Permission::Console);
    let mut close = None;
    loop {
        tokio::select! {
            () = open.closing() => {
                close = Some(axum::extract::ws::CloseFrame {
                    code: zlh_proto::console::CLOSE_RESTARTING,
                    reason: "this control plane is restarting; reconnect".into(),
                });
                break;
            }
            announced = revocations.changed() => {
                let (session, user, server) = (&ticket.session, ticket.user_id, ticket.server_id);
                if !access::still_allowed(&control, session, user, server, need, announced).await {
                    tracing::info!(server_id = ticket.server_id, "console closed: its session or access ended");
                    close = Some(axum::extract::ws::CloseFrame {
                        code: zlh_proto::console::CLOSE_SESSION_ENDED,
                        reason: "the session that opened this console, or its access to the server, has ended".into(),
                    });
                    break;
                }
            }
            frame = agent_stream.next() => {
                let message = match frame {
                    Some(Ok(ConsoleFrame::Binary(bytes))) => Message::Binary(bytes.into()),
                    Some(Ok(ConsoleFrame::Text(text))) => Message::Text(text.into()),
                    _ => break,
                };
                if browser_sink.send(message).await.is_err() {
                    break;
                }
            }
            message = browser_stream.next() => {
                let frame = match message {
                    Some(Ok(Message::Binary(bytes))) => ConsoleFrame::Binary(bytes.to_vec()),
                    Some(Ok(Message::Text(text))) => ConsoleFrame::Text(text.to_string()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    _ => break,
                };
                if agent_sink.send(frame).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = browser_sink.send(Message::Close(close)).await;
    let _ = agent_sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let config = ControlConfig::load(
            "[console]\nallowed_origins = [\"https://panel.example.com/\"]\n",
            Vec::new(),
        )
        .expect("config");
        let with = |origin: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(ORIGIN, origin.parse().expect("header"));
            origin_allowed(&config, &headers)
        };
        assert!(origin_allowed(&config, &HeaderMap::new()));
        assert!(
            with("http://127.0.0.1:8080")
                && with("http://localhost:8080")
                && with("https://panel.example.com")
        );
        assert!(!with("http://evil.example") && !with("http://127.0.0.1:9999"));
    }
}
