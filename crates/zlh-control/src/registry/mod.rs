//! The agent registry: every agent the control plane talks to, by server id.
//!
//! An agent is reached through one trait, [`Agent`]: `remote` implements it over HTTP and
//! WebSocket; an in-process agent can implement it too. Browser-facing code names servers by
//! id only and gets the agent from here; agent URLs and secrets live inside the implementations
//! and never appear in their `Debug` output, a log line or an error.
//!
//! Architecture Invariant: an agent's failures become [`AgentError`]s, and those become stable
//! API error codes (`agent_unreachable` 502, `agent_timeout` 504, `agent_auth_failed` 502,
//! `agent_unsupported` 501, the agent's own 4xx codes passed through, `agent_error` 502). An
//! agent refusing our secret is never a 401 to the browser: that would sign the user out.

mod heartbeat;
mod remote;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use serde::de::DeserializeOwned;
use serde_json::Value;
use zlh_proto::agent::{CrashHistory, Health, Heartbeat, PowerAccepted, Readiness, StatusSnapshot};
use zlh_proto::{ErrorBody, Secret};

pub use heartbeat::Kept;
pub use remote::RemoteAgent;

/// Where a server's agent answers, and its secret. Backend-only.
#[derive(Clone)]
pub struct AgentEndpoint {
    /// Base URL of the agent's API.
    pub url: Secret,
    /// The agent's bearer secret.
    pub secret: Secret,
    /// Where code-server listens (`host:port`), for dev servers.
    pub ide: Option<Secret>,
}

impl std::fmt::Debug for AgentEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentEndpoint { url: [redacted], secret: [redacted] }")
    }
}

/// Why a call to an agent failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// No connection (refused, reset, DNS).
    #[error("the server's agent cannot be reached")]
    Unreachable,
    /// No answer in time.
    #[error("the server's agent did not answer in time")]
    Timeout,
    /// The agent refused our secret.
    #[error("the server's agent refused the control plane's credentials")]
    AuthFailed,
    /// The agent does not know this operation (an older agent).
    #[error("the server's agent does not support this operation")]
    Unsupported,
    /// The agent answered with its own error (status and envelope), passed on as is for 4xx.
    #[error("the server's agent answered {status}: {}", body.error.message)]
    Upstream {
        /// HTTP status from the agent.
        status: u16,
        /// Its error envelope.
        body: ErrorBody,
    },
    /// The agent answered something that is not our protocol.
    #[error("the server's agent answered something unexpected")]
    Protocol,
}

/// A frame on a console connection (the `zlh_proto::console` protocol).
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleFrame {
    /// Output (agent → viewer) or raw input (viewer → agent).
    Binary(Vec<u8>),
    /// A JSON control message.
    Text(String),
}

/// Output half of a console connection.
pub type ConsoleSink = std::pin::Pin<Box<dyn Sink<ConsoleFrame, Error = AgentError> + Send>>;
/// Input half of a console connection.
pub type ConsoleStream = std::pin::Pin<Box<dyn Stream<Item = Result<ConsoleFrame, AgentError>> + Send>>;

/// A body streamed to or from an agent (uploads, downloads).
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A streamed answer: its status, the headers a download needs, and the body.
pub struct Streamed {
    /// HTTP status from the agent (2xx; errors are [`AgentError`]s).
    pub status: u16,
    /// `content-type`, `content-length` and `content-disposition`, when the agent sent them.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: ByteStream,
}

impl std::fmt::Debug for Streamed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streamed").field("status", &self.status).field("headers", &self.headers).finish()
    }
}

/// HTTP method of an agent call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// PATCH.
    Patch,
}

/// An agent the control plane can talk to.
#[async_trait]
pub trait Agent: Send + Sync + std::fmt::Debug {
    /// Calls a JSON route (`path` with its query): the agent's status and JSON answer
    /// (`Value::Null` when empty).
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), AgentError>;
    /// Forwards a streamed body (uploads) and streams the answer back (downloads).
    async fn forward(
        &self,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: ByteStream,
    ) -> Result<Streamed, AgentError>;
    /// Opens the console, resuming at `since`.
    async fn console(&self, since: Option<u64>) -> Result<(ConsoleSink, ConsoleStream), AgentError>;
    /// `GET /heartbeat` (`Unsupported` from an agent older than it), on the poll task's `kept`
    /// connection where the agent has one.
    async fn heartbeat(&self, kept: &mut Kept) -> Result<Heartbeat, AgentError> {
        let _ = kept;
        let (_, value) = self.request(Method::Get, "/heartbeat", None).await?;
        serde_json::from_value(value).map_err(|_| AgentError::Protocol)
    }
}

/// Typed calls on any agent.
impl<'a> dyn Agent + 'a {
    /// Calls a JSON route; only the answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, AgentError> {
        self.request(method, path, body).await.map(|(_, value)| value)
    }

    async fn call_typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, AgentError> {
        let value = self.call(method, path, body).await?;
        serde_json::from_value(value).map_err(|_| AgentError::Protocol)
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, AgentError> {
        self.call_typed(Method::Get, "/health", None).await
    }

    /// `GET /ready`.
    pub async fn ready(&self) -> Result<Readiness, AgentError> {
        self.call_typed(Method::Get, "/ready", None).await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<StatusSnapshot, AgentError> {
        self.call_typed(Method::Get, "/status", None).await
    }

    /// `GET /crashes`.
    pub async fn crashes(&self) -> Result<CrashHistory, AgentError> {
        self.call_typed(Method::Get, "/crashes", None).await
    }

    /// `POST /start`, `/stop` or `/restart`.
    pub async fn power(&self, action: PowerAction) -> Result<PowerAccepted, AgentError> {
        self.call_typed(Method::Post, action.path(), None).await
    }

    /// `POST /console/command`.
    pub async fn console_command(&self, command: &str) -> Result<(), AgentError> {
        self.call(Method::Post, "/console/command", Some(serde_json::json!({ "command": command })))
            .await
            .map(|_| ())
    }
}

/// A power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// Start.
    Start,
    /// Graceful stop.
    Stop,
    /// Stop, then start.
    Restart,
    /// SIGKILL now (a stop that takes too long).
    Kill,
}

impl PowerAction {
    fn path(self) -> &'static str {
        match self {
            PowerAction::Start => "/start",
            PowerAction::Stop => "/stop",
            PowerAction::Restart => "/restart",
            PowerAction::Kill => "/kill",
        }
    }
}

/// Every known agent, by server id.
#[derive(Debug, Default)]
pub struct Registry {
    agents: RwLock<HashMap<i64, Arc<dyn Agent>>>,
}

impl Registry {
    /// The agent of a server.
    pub fn get(&self, server_id: i64) -> Option<Arc<dyn Agent>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).get(&server_id).cloned()
    }

    /// Registers (or replaces) a server's agent.
    pub fn insert(&self, server_id: i64, agent: Arc<dyn Agent>) {
        self.agents.write().unwrap_or_else(|p| p.into_inner()).insert(server_id, agent);
    }

    /// Forgets a server's agent.
    pub fn remove(&self, server_id: i64) {
        self.agents.write().unwrap_or_else(|p| p.into_inner()).remove(&server_id);
    }

    /// Every registered server id.
    pub fn ids(&self) -> Vec<i64> {
        self.agents.read().unwrap_or_else(|p| p.into_inner()).keys().copied().collect()
    }
}
