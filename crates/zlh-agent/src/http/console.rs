//! `GET /console`: the console as a WebSocket (protocol in `zlh_proto::console`).
//!
//! Each viewer reads the scrollback ring through its own cursor, so viewers never slow the
//! game or each other. A viewer whose connection accepts nothing for `viewer_stall_timeout`
//! is disconnected; until then it simply falls behind and, when it resumes, gets a gap marker
//! for what fell out of the ring.

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use zlh_proto::ErrorCode;
use zlh_proto::console::{ClientMessage, ServerEvent, encode_output};

use zlh_http::ApiError;

use super::AppState;
use crate::console::Chunk;
use crate::supervisor::Supervisor;

/// Largest output frame sent to a viewer.
const FRAME: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct ConsoleQuery {
    /// Resume from this offset (the end of the last frame the viewer received).
    since: Option<u64>,
}

pub(super) async fn upgrade(
    State(state): State<AppState>,
    query: Result<Query<ConsoleQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return ApiError::new(ErrorCode::BadRequest, "since must be a non-negative integer offset")
            .into_response();
    };
    let Ok(upgrade) = upgrade else {
        return ApiError::new(
            ErrorCode::BadRequest,
            "this route is a WebSocket: connect with an upgrade request",
        )
        .into_response();
    };
    let stall_timeout = state.config.console.viewer_stall_timeout;
    let limit = zlh_proto::console::MAX_VIEWER_MESSAGE;
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| async move {
        let viewer = Viewer { socket, supervisor: state.supervisor, stall_timeout };
        viewer.serve(query.since, state.shutdown).await;
    })
}

struct Viewer {
    socket: WebSocket,
    supervisor: Supervisor,
    stall_timeout: Duration,
}

/// The viewer went away or stalled.
struct Gone;

impl Viewer {
    async fn serve(mut self, since: Option<u64>, shutdown: tokio_util::sync::CancellationToken) {
        let console = std::sync::Arc::clone(self.supervisor.console());
        let mut follower = console.follow(since);
        let mut status = self.supervisor.watch_status();
        let mut state = status.borrow_and_update().state;
        let (start, end) = console.bounds();
        let hello = ServerEvent::Hello { start, end, resume_from: follower.cursor(), state };
        if self.send_event(&hello).await.is_err() {
            return;
        }
        loop {
            let sent = tokio::select! {
                chunk = follower.next(FRAME) => match chunk {
                    Some(Chunk::Data { offset, bytes }) => self.send(Message::Binary(encode_output(offset, &bytes).into())).await,
                    Some(Chunk::Gap { from, to }) => self.send_event(&ServerEvent::Gap { from, to }).await,
                    None => return,
                },
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now = status.borrow_and_update().state;
                    if now == state {
                        continue;
                    }
                    state = now;
                    self.send_event(&ServerEvent::State { state }).await
                }
                message = self.socket.recv() => match message {
                    Some(Ok(message)) => {
                        if !self.receive(message) {
                            return;
                        }
                        Ok(())
                    }
                    Some(Err(_)) | None => return,
                },
                _ = shutdown.cancelled() => {
                    let _ = self.socket.send(Message::Close(None)).await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    /// Handles a frame from the viewer; false when it closed.
    fn receive(&self, message: Message) -> bool {
        match message {
            Message::Binary(bytes) => self.supervisor.input(bytes.to_vec()),
            Message::Text(text) => match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage::Input { data }) => self.supervisor.input(data.into_bytes()),
                Ok(ClientMessage::Resize { cols, rows }) => self.supervisor.resize(cols, rows),
                Err(e) => tracing::debug!(error = %e, "ignored a malformed console message"),
            },
            Message::Close(_) => return false,
            Message::Ping(_) | Message::Pong(_) => {}
        }
        true
    }

    async fn send_event(&mut self, event: &ServerEvent) -> Result<(), Gone> {
        let text = serde_json::to_string(event).map_err(|_| Gone)?;
        self.send(Message::Text(text.into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), Gone> {
        match tokio::time::timeout(self.stall_timeout, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Gone),
            Err(_) => {
                tracing::info!("console viewer stalled; disconnected");
                Err(Gone)
            }
        }
    }
}
