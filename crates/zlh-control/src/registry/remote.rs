//! An agent reached over HTTP (JSON routes) and WebSocket (console), with its bearer secret.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};
use zlh_proto::error::UNKNOWN_ROUTE_HEADER;
use zlh_proto::{ErrorBody, ErrorCode, Secret};

use super::{Agent, AgentError, ByteStream, ConsoleFrame, ConsoleSink, ConsoleStream, Method, Streamed};

/// An agent at a URL. `Debug` shows neither the URL nor the secret.
#[derive(Clone)]
pub struct RemoteAgent {
    base_url: Secret,
    secret: Secret,
    http: reqwest::Client,
    timeout: Duration,
}

impl std::fmt::Debug for RemoteAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteAgent { url: [redacted], secret: [redacted] }")
    }
}

impl RemoteAgent {
    fn builder(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base_url.expose());
        match method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
            Method::Delete => self.http.delete(url),
            Method::Patch => self.http.patch(url),
        }
        .bearer_auth(self.secret.expose())
    }

    /// An agent at `base_url` (`http://host:port`), sharing `http`'s connection pool.
    pub fn new(base_url: Secret, secret: Secret, http: reqwest::Client, timeout: Duration) -> RemoteAgent {
        RemoteAgent { base_url, secret, http, timeout }
    }

    /// A client for a driver checking whether an agent it started answers: a short timeout,
    /// since a driver waits in a loop of its own.
    pub fn probe(endpoint: &super::AgentEndpoint, http: &reqwest::Client) -> RemoteAgent {
        RemoteAgent::new(endpoint.url.clone(), endpoint.secret.clone(), http.clone(), Duration::from_secs(2))
    }

    /// The HTTP client every remote agent shares, without proxies. Idle connections close after
    /// a second: a poll's three requests share one connection, but keeping one open per agent
    /// between polls would cost ~50 KB each (hyper's buffers and task): at 10,000 agents, 460
    /// MiB instead of 260 MiB, for 12 points less CPU (`cargo xtask bench poller`).
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .expect("a client without TLS always builds")
    }
}

fn classify(error: &reqwest::Error) -> AgentError {
    if error.is_timeout() { AgentError::Timeout } else { AgentError::Unreachable }
}

/// Maps an agent's error answer; `unknown_route` when it carried
/// [`UNKNOWN_ROUTE_HEADER`] (an older agent without the route).
pub(super) fn upstream(status: u16, unknown_route: bool, text: &str) -> AgentError {
    let body: Option<ErrorBody> = serde_json::from_str(text).ok();
    match (status, body) {
        (401, _) => AgentError::AuthFailed,
        (404, _) if unknown_route => AgentError::Unsupported,
        (404, None) | (405, _) | (501, _) => AgentError::Unsupported,
        (status, Some(body)) => AgentError::Upstream { status, body },
        (status, None) => AgentError::Upstream {
            status,
            body: ErrorBody::new(ErrorCode::AgentError, "the server's agent failed without saying why"),
        },
    }
}

#[async_trait]
impl Agent for RemoteAgent {
    async fn heartbeat(&self, kept: &mut super::Kept) -> Result<zlh_proto::agent::Heartbeat, AgentError> {
        match self.base_url.expose().strip_prefix("http://") {
            // Plain HTTP to `host:port`: on the kept connection.
            Some(authority) if !authority.contains('/') => {
                super::heartbeat::heartbeat(kept, authority, self.secret.expose(), self.timeout).await
            }
            _ => {
                let (_, value) = self.request(Method::Get, "/heartbeat", None).await?;
                serde_json::from_value(value).map_err(|_| AgentError::Protocol)
            }
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), AgentError> {
        let mut request = self.builder(method, path).timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        let unknown_route = response.headers().contains_key(UNKNOWN_ROUTE_HEADER);
        let text = response.text().await.map_err(|e| classify(&e))?;
        if !(200..300).contains(&status) {
            return Err(upstream(status, unknown_route, &text));
        }
        if text.is_empty() {
            return Ok((status, Value::Null));
        }
        serde_json::from_str(&text).map(|value| (status, value)).map_err(|_| AgentError::Protocol)
    }

    async fn forward(
        &self,
        method: Method,
        path: &str,
        content_type: Option<String>,
        body: ByteStream,
    ) -> Result<Streamed, AgentError> {
        let mut request = self.builder(method, path).body(reqwest::Body::wrap_stream(body));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        // No overall timeout: a large upload or download takes as long as it takes; the
        // connection itself still fails fast.
        let response = request.send().await.map_err(|e| classify(&e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let unknown_route = response.headers().contains_key(UNKNOWN_ROUTE_HEADER);
            let text = response.text().await.map_err(|e| classify(&e))?;
            return Err(upstream(status, unknown_route, &text));
        }
        let headers = ["content-type", "content-length", "content-disposition"]
            .into_iter()
            .filter_map(|name| Some((name, response.headers().get(name)?.to_str().ok()?.to_owned())))
            .collect();
        let body = response.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other));
        Ok(Streamed { status, headers, body: Box::pin(body) })
    }

    async fn console(&self, since: Option<u64>) -> Result<(ConsoleSink, ConsoleStream), AgentError> {
        let mut url = format!("{}/console", self.base_url.expose().replacen("http", "ws", 1));
        if let Some(since) = since {
            url.push_str(&format!("?since={since}"));
        }
        let mut request = url.into_client_request().map_err(|_| AgentError::Protocol)?;
        let authorization =
            format!("Bearer {}", self.secret.expose()).parse().map_err(|_| AgentError::Protocol)?;
        request.headers_mut().insert("Authorization", authorization);
        let connect = tokio_tungstenite::connect_async(request);
        let (socket, _) = match tokio::time::timeout(self.timeout, connect).await {
            Err(_) => return Err(AgentError::Timeout),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let text =
                    response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
                let unknown_route = response.headers().contains_key(UNKNOWN_ROUTE_HEADER);
                return Err(upstream(response.status().as_u16(), unknown_route, &text));
            }
            Ok(Err(_)) => return Err(AgentError::Unreachable),
            Ok(Ok(connected)) => connected,
        };
        let (sink, stream) = socket.split();
        let sink = sink.sink_map_err(|_| AgentError::Unreachable).with(|frame: ConsoleFrame| async move {
            Ok::<_, AgentError>(match frame {
                ConsoleFrame::Binary(bytes) => Message::Binary(bytes.into()),
                ConsoleFrame::Text(text) => Message::Text(text.into()),
            })
        });
        let stream = stream.filter_map(|message| async move {
            match message {
                Ok(Message::Binary(bytes)) => Some(Ok(ConsoleFrame::Binary(bytes.to_vec()))),
                Ok(Message::Text(text)) => Some(Ok(ConsoleFrame::Text(text.to_string()))),
                Ok(_) => None,
                Err(_) => Some(Err(AgentError::Unreachable)),
            }
        });
        Ok((Box::pin(sink), Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_url_nor_secret() {
        let agent = RemoteAgent::new(
            Secret::new("http://10.0.0.7:7420"),
            Secret::new("agent-secret-value"),
            RemoteAgent::client(),
            Duration::from_secs(1),
        );
        let debug = format!("{agent:?}");
        assert!(!debug.contains("10.0.0.7") && !debug.contains("agent-secret-value"), "{debug}");
    }

    #[test]
    fn agent_answers_map_to_typed_errors() {
        let not_found = r#"{"error":{"code":"not_found","message":"no such route"}}"#;
        let conflict = r#"{"error":{"code":"already_running","message":"the server is already running","state":"running"}}"#;
        let no_backup = r#"{"error":{"code":"not_found","message":"no such backup"}}"#;
        assert_eq!(upstream(401, false, ""), AgentError::AuthFailed);
        assert_eq!(upstream(404, true, not_found), AgentError::Unsupported);
        assert!(matches!(upstream(404, false, no_backup), AgentError::Upstream { status: 404, .. }));
        assert_eq!(upstream(405, false, ""), AgentError::Unsupported);
        assert!(
            matches!(upstream(409, false, conflict), AgentError::Upstream { status: 409, body } if body.error.code == ErrorCode::AlreadyRunning)
        );
        assert!(matches!(upstream(500, false, "oops"), AgentError::Upstream { status: 500, .. }));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr");
        drop(listener);
        let agent = RemoteAgent::new(
            Secret::new(format!("http://{address}")),
            Secret::new("s"),
            RemoteAgent::client(),
            Duration::from_secs(2),
        );
        let agent: &dyn Agent = &agent;
        assert_eq!(agent.health().await, Err(AgentError::Unreachable));
        assert_eq!(agent.console(None).await.err(), Some(AgentError::Unreachable));
    }
}
