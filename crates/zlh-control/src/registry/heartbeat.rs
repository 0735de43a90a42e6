//! The poller's one request per interval, on a connection each poll task keeps.
//!
//! At 10,000 agents a new TCP connection per poll (what a pool with a short idle timeout gives)
//! spends most of the poller's CPU in the kernel, and a pool that keeps them costs ~50 KB per
//! agent in buffers and tasks. Here a poll task keeps only the socket between polls: the request
//! is written whole, and the answer read into a buffer that lives for one poll and parsed with
//! `httparse` (hyper's own parser). Anything this does not expect (no `Content-Length`, a body
//! over [`MAX_ANSWER`]) is an error, and the poll is then made the ordinary way.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zlh_proto::agent::Heartbeat;
use zlh_proto::error::UNKNOWN_ROUTE_HEADER;

use super::AgentError;

/// The largest answer read (a status is a few kilobytes).
const MAX_ANSWER: usize = 1 << 20;

/// A poll task's connection to its agent, kept between polls.
#[derive(Debug, Default)]
pub struct Kept {
    stream: Option<TcpStream>,
    /// The agent has no `/heartbeat` (an older one): the poller does not ask it again.
    pub older: bool,
}

/// `GET /heartbeat` from the agent at `authority` (`host:port`, plain HTTP) with `secret`, on
/// `kept`'s connection when it has one that still works, else on a new one it then keeps.
pub(super) async fn heartbeat(
    kept: &mut Kept,
    authority: &str,
    secret: &str,
    timeout: Duration,
) -> Result<Heartbeat, AgentError> {
    let request = format!(
        "GET /heartbeat HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {secret}\r\naccept: application/json\r\n\r\n"
    );
    let exchanged = tokio::time::timeout(timeout, async {
        // A kept connection the agent closed meanwhile fails at once: once more on a new one.
        if let Some(stream) = kept.stream.take()
            && let Ok(answer) = exchange(stream, request.as_bytes()).await
        {
            return Ok(answer);
        }
        let stream = TcpStream::connect(authority).await.map_err(|_| AgentError::Unreachable)?;
        let _ = stream.set_nodelay(true);
        exchange(stream, request.as_bytes()).await.map_err(|_| AgentError::Unreachable)
    })
    .await
    .map_err(|_| AgentError::Timeout)?;
    let answer = exchanged?;
    kept.stream = answer.stream;
    if !(200..300).contains(&answer.status) {
        let text = String::from_utf8_lossy(&answer.body);
        return Err(super::remote::upstream(answer.status, answer.unknown_route, &text));
    }
    serde_json::from_slice(&answer.body).map_err(|_| AgentError::Protocol)
}

/// What one request got back.
struct Answer {
    status: u16,
    unknown_route: bool,
    body: Vec<u8>,
    /// The connection, unless the agent said it closes it.
    stream: Option<TcpStream>,
}

/// Writes `request`, reads one answer with a `Content-Length` body.
async fn exchange(mut stream: TcpStream, request: &[u8]) -> std::io::Result<Answer> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    stream.write_all(request).await?;
    let mut buffer = Vec::with_capacity(4096);
    loop {
        if buffer.len() == buffer.capacity() {
            buffer.reserve(buffer.len());
        }
        if stream.read_buf(&mut buffer).await? == 0 {
            return Err(invalid("the agent closed the connection"));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(&buffer).map_err(|_| invalid("not HTTP"))?
        else {
            if buffer.len() > MAX_ANSWER {
                return Err(invalid("headers too long"));
            }
            continue;
        };
        let header = |name: &str| response.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
        let length: usize = header("content-length")
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .filter(|length| *length <= MAX_ANSWER)
            .ok_or_else(|| invalid("no usable content-length"))?;
        let status = response.code.unwrap_or(0);
        let unknown_route = header(UNKNOWN_ROUTE_HEADER).is_some();
        let closes = header("connection").is_some_and(|h| h.value.eq_ignore_ascii_case(b"close"));
        while buffer.len() < head + length {
            buffer.reserve(head + length - buffer.len());
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(invalid("the answer ended early"));
            }
        }
        if buffer.len() > head + length {
            return Err(invalid("more than one answer"));
        }
        buffer.drain(..head);
        return Ok(Answer { status, unknown_route, body: buffer, stream: (!closes).then_some(stream) });
    }
}
