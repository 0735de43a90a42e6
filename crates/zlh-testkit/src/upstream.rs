//! A stand-in for code-server behind the IDE proxy: records what reaches it, answers plain
//! requests with a small or a 1 MiB body, a chunked one (`/chunked`) or a cookie for a wider
//! scope than the IDE's (`/cookie`), and echoes WebSocket messages.

use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What one request looked like when it reached the upstream.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Path and query.
    pub path: String,
    /// Every header, lower-case names.
    pub headers: Vec<(String, String)>,
}

/// The upstream server.
#[derive(Debug, Clone)]
pub struct EchoUpstream {
    /// `127.0.0.1:<port>`.
    pub address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const MIB: usize = 1 << 20;

impl EchoUpstream {
    /// Starts one on a free port.
    pub async fn start() -> EchoUpstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let big: Arc<[u8]> = vec![b'z'; MIB].into();
        let app = axum::Router::new()
            .route("/big", get(move || async move { big.to_vec() }))
            .route("/socket", get(echo))
            .route("/chunked", get(chunked))
            .route("/cookie", get(cookie))
            .fallback(small)
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&seen), record))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        EchoUpstream { address, seen }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn record(
    State(seen): State<Arc<Mutex<Vec<Seen>>>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let path = request.uri().path_and_query().map(ToString::to_string).unwrap_or_default();
    seen.lock().expect("seen").push(Seen { path, headers });
    next.run(request).await
}

async fn small() -> &'static str {
    "hello from the upstream\n"
}

/// Three chunks: a body without a `Content-Length`.
async fn chunked() -> axum::body::Body {
    let parts = ["first chunk, ", "second chunk, ", "the end\n"];
    axum::body::Body::from_stream(futures_util::stream::iter(
        parts.map(|part| Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(part.as_bytes()))),
    ))
}

async fn cookie() -> impl IntoResponse {
    ([("set-cookie", "vscode-tkn=abc; Path=/; Domain=.localhost; HttpOnly")], "cookie set\n")
}

async fn echo(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                let reply = match message {
                    Message::Text(_) | Message::Binary(_) => message,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if socket.send(reply).await.is_err() {
                    break;
                }
            }
        })
        .into_response()
}
