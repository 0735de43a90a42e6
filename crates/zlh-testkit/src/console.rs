//! A console WebSocket client that checks the offsets it receives are contiguous.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use zlh_proto::console::decode_output;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One console viewer.
#[derive(Debug)]
pub struct ConsoleClient {
    socket: Socket,
    /// The first frame (`{"type":"hello",...}`).
    pub hello: Value,
    /// Offset after the last byte received.
    pub next_offset: u64,
    /// Every output byte received, in order.
    pub received: Vec<u8>,
    /// Every control event received after the hello.
    pub events: Vec<Value>,
    /// The close code, once the server closed the console.
    pub close_code: Option<u16>,
}

impl ConsoleClient {
    /// Connects to `<url>/console` (ws), authenticating with the bearer secret.
    pub async fn connect(url: &str, secret: &str, since: Option<u64>) -> ConsoleClient {
        let mut ws_url = format!("{}/console", url.replacen("http", "ws", 1));
        if let Some(since) = since {
            ws_url.push_str(&format!("?since={since}"));
        }
        let authorization = format!("Bearer {secret}");
        Self::open(&ws_url, &[("Authorization", authorization.as_str())]).await.expect("console connect")
    }

    /// Connects like [`ConsoleClient::connect`] through a socket that takes in only a few KiB
    /// unread: a viewer that stops reading stalls the agent's sends at once, however slowly a
    /// busy machine produces output.
    pub async fn connect_with_small_window(url: &str, secret: &str) -> ConsoleClient {
        let ws_url = format!("{}/console", url.replacen("http", "ws", 1));
        let mut request = ws_url.as_str().into_client_request().expect("request");
        let authorization = format!("Bearer {secret}").parse().expect("header");
        request.headers_mut().insert("Authorization", authorization);
        let address: std::net::SocketAddr =
            url.trim_start_matches("http://").trim_end_matches('/').parse().expect("agent address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(address).await.expect("connect");
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (socket, _) = tokio_tungstenite::client_async(request, stream).await.expect("console connect");
        Self::greeted(socket).await
    }

    /// Opens a console WebSocket at `ws_url` with extra headers; the HTTP status and body if
    /// the upgrade is refused.
    pub async fn open(ws_url: &str, headers: &[(&str, &str)]) -> Result<ConsoleClient, (u16, Value)> {
        let mut request = ws_url.into_client_request().expect("request");
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().expect("header name");
            request.headers_mut().insert(name, value.parse().expect("header"));
        }
        let socket = match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => socket,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body =
                    response.body().as_deref().map(|b| serde_json::from_slice(b).unwrap_or(Value::Null));
                return Err((response.status().as_u16(), body.unwrap_or(Value::Null)));
            }
            Err(e) => panic!("console connect: {e}"),
        };
        Ok(Self::greeted(socket).await)
    }

    /// Reads the hello frame of a new connection.
    async fn greeted(mut socket: Socket) -> ConsoleClient {
        let hello = match socket.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str::<Value>(&text).expect("hello json"),
            other => panic!("expected a hello frame, got {other:?}"),
        };
        assert_eq!(hello["type"], "hello", "{hello}");
        let next_offset = hello["resumeFrom"].as_u64().expect("resumeFrom");
        ConsoleClient {
            socket,
            hello,
            next_offset,
            received: Vec::new(),
            events: Vec::new(),
            close_code: None,
        }
    }

    /// Reads one frame; output is appended to `received` after checking that it starts exactly
    /// where the previous one ended (or where a gap said). `None` on timeout, close or reset.
    pub async fn read_frame(&mut self, timeout: Duration) -> Option<()> {
        self.read_frame_keeping(timeout, true).await
    }

    /// Reads and discards output until `offset` (for benchmarks: nothing is kept); returns the
    /// number of output bytes read, or `None` if the connection ended first.
    pub async fn drain_to(&mut self, offset: u64, timeout: Duration) -> Option<u64> {
        let from = self.next_offset;
        while self.next_offset < offset {
            self.read_frame_keeping(timeout, false).await?;
        }
        Some(self.next_offset - from)
    }

    /// Reads until the server closes the console; its close code (`None` if it was still open
    /// after `timeout`, or the connection broke without a close frame).
    pub async fn closed(&mut self, timeout: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next()).await.ok()??.ok()?;
            if let Message::Close(close) = frame {
                return close.map(|c| u16::from(c.code));
            }
        }
    }

    /// Reads one frame like [`ConsoleClient::read_frame`], keeping its output only if `keep`.
    pub async fn read_frame_keeping(&mut self, timeout: Duration, keep: bool) -> Option<()> {
        // A reset connection is a closed one: the agent dropped this viewer.
        let frame = tokio::time::timeout(timeout, self.socket.next()).await.ok()??.ok()?;
        match frame {
            Message::Binary(bytes) => {
                let (offset, data) = decode_output(&bytes).expect("output frame");
                assert_eq!(offset, self.next_offset, "output must continue exactly where it left off");
                self.next_offset = offset + data.len() as u64;
                if keep {
                    self.received.extend_from_slice(data);
                }
            }
            Message::Text(text) => {
                let event: Value = serde_json::from_str(&text).expect("event json");
                if event["type"] == "gap" {
                    assert_eq!(
                        event["from"].as_u64(),
                        Some(self.next_offset),
                        "gap must start at the cursor"
                    );
                    self.next_offset = event["to"].as_u64().expect("gap end");
                }
                self.events.push(event);
            }
            Message::Close(close) => {
                self.close_code = close.map(|c| u16::from(c.code));
                return None;
            }
            _ => {}
        }
        Some(())
    }

    /// Reads until the text received contains `needle`; panics after `timeout`. Only what
    /// arrived since the last look is searched: floods of megabytes stay linear.
    pub async fn read_until(&mut self, needle: &str, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let bytes = needle.as_bytes();
        let mut searched = 0usize;
        loop {
            let from = searched.saturating_sub(bytes.len().saturating_sub(1));
            if bytes.is_empty() || self.received[from..].windows(bytes.len()).any(|w| w == bytes) {
                return;
            }
            searched = self.received.len();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || self.read_frame(left).await.is_none() {
                let text = self.text();
                let tail = &text[text.floor_char_boundary(text.len().saturating_sub(4000))..];
                panic!("console never showed {needle:?}; the last of {} bytes:\n{tail}", self.received.len());
            }
        }
    }

    /// Reads until an event satisfies `check`.
    pub async fn read_until_event(&mut self, timeout: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.iter().find(|e| check(e)) {
                return event.clone();
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero() && self.read_frame(left).await.is_some(),
                "event never came: {:?}",
                self.events
            );
        }
    }

    /// The output received so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Types into the console (raw keyboard input, a binary frame).
    pub async fn type_keys(&mut self, keys: &str) {
        self.socket.send(Message::Binary(keys.as_bytes().to_vec().into())).await.expect("send input");
    }

    /// Sends a JSON control message.
    pub async fn send_json(&mut self, message: Value) {
        self.socket.send(Message::Text(message.to_string().into())).await.expect("send json");
    }
}
