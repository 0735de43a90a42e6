//! The IDE's fast path: plain requests to a hosted IDE, proxied over HTTP/1.1 by hand.
//!
//! Most of what code-server is asked is a `GET` with a cookie for a static file or a small
//! answer. Through hyper's server and client both (a request parsed into a `HeaderMap`,
//! rebuilt, sent through a channel to a connection task, and back) such a request cost three
//! times nginx's CPU outside the kernel. Here one task reads the browser's request with
//! `httparse`, writes it on to code-server as bytes on a connection it keeps, and copies the
//! answer back, rewriting only what must change (`Cookie`, hop-by-hop headers, `Set-Cookie`).
//!
//! A WebSocket upgrade from the IDE's own page is forwarded the same way; once code-server
//! switched protocols, the two sockets are joined ([`super::joined`]).
//!
//! Anything else goes to hyper and the router, from the request that is not plain onwards,
//! with the bytes read so far: a body, another upgrade or another origin's, a link
//! (`?token=`), the IDE's root, a cookie not verified, a code-server that does not answer,
//! HTTP/1.0, a head too long to parse. So the fast path answers only what the general one
//! would answer the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;

use super::proxy::scoped_cookie;
use crate::ControlPlane;
use crate::drain::Phase;

/// The longest request or response head read (hyper's default limit is larger; a longer head
/// goes to hyper, which answers it).
const MAX_HEAD: usize = 64 << 10;
/// Most headers in a head.
const MAX_HEADERS: usize = 100;
/// How long a connection may sit between requests, or take to send one.
const IDLE: Duration = Duration::from_secs(120);
/// Connections kept per code-server.
const KEPT_PER_UPSTREAM: usize = 64;
/// How long a connection to a code-server is kept unused (code-server closes its own after 5 s;
/// a deleted server's would otherwise stay open).
const KEPT_FOR: Duration = Duration::from_secs(30);

/// Connections to code-servers kept between requests, by address.
#[derive(Debug, Default)]
pub(crate) struct Upstreams {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    streams: HashMap<String, Vec<(TcpStream, Instant)>>,
    swept: Option<Instant>,
}

impl Kept {
    /// Closes what was kept longer than [`KEPT_FOR`], looking at most once per [`KEPT_FOR`].
    fn sweep(&mut self, now: Instant) {
        if self.swept.is_some_and(|at| now.duration_since(at) < KEPT_FOR) {
            return;
        }
        self.swept = Some(now);
        self.streams.retain(|_, streams| {
            streams.retain(|(_, kept_at)| now.duration_since(*kept_at) < KEPT_FOR);
            !streams.is_empty()
        });
    }
}

impl Upstreams {
    /// A kept connection to `upstream` that is still open and has nothing to read (an answer
    /// nobody asked for would be taken for the next request's).
    fn take(&self, upstream: &str) -> Option<TcpStream> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.sweep(Instant::now());
        let streams = kept.streams.get_mut(upstream)?;
        let mut quiet = None;
        while let Some((stream, _)) = streams.pop() {
            if is_quiet(&stream) {
                quiet = Some(stream);
                break;
            }
        }
        if streams.is_empty() {
            kept.streams.remove(upstream);
        }
        quiet
    }

    fn keep(&self, upstream: &str, stream: TcpStream) {
        let now = Instant::now();
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.sweep(now);
        match kept.streams.get_mut(upstream) {
            Some(streams) if streams.len() < KEPT_PER_UPSTREAM => streams.push((stream, now)),
            Some(_) => {}
            None => {
                kept.streams.insert(upstream.to_owned(), vec![(stream, now)]);
            }
        }
    }
}

/// Whether a kept connection is open with nothing to read. Free unless the reactor saw it
/// readable: only then is it read.
fn is_quiet(stream: &TcpStream) -> bool {
    matches!(stream.try_read(&mut [0; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// What became of a connection the fast path served.
pub(crate) enum Served {
    /// It ended (closed by either side, or the replica closes).
    Ended,
    /// The general path takes it over, starting with these bytes (a request's head, or more).
    HandOver(TcpStream, Vec<u8>),
}

/// Serves requests on `client` for as long as they are plain requests to the hosted IDE of
/// server `server_id`; `buffer` holds what was read of the connection so far. What uses the
/// store runs on `main`.
pub(crate) async fn serve(
    control: &Arc<ControlPlane>,
    main: &Handle,
    mut client: TcpStream,
    mut buffer: Vec<u8>,
    server_id: i64,
) -> Served {
    let Some(suffix) = control.ide.host_suffix.as_deref() else { return Served::HandOver(client, buffer) };
    let scheme = control.ide.scheme.as_str();
    // Counted among the sockets a stopping replica waits for, and told when to close (one
    // waiter for the connection's life, not one per read).
    let mut open = control.drain.socket();
    let mut closing = std::pin::pin!(open.closing());
    let mut idle = Idle::new();
    // The connection to code-server this connection used last, kept for its next request (a
    // browser's requests on one connection go to one IDE) and given to the others when it ends.
    let mut bound: Option<Bound> = None;
    let served = loop {
        if control.drain.phase() == Phase::Closing {
            break Served::Ended;
        }
        let (len, request) = match Plain::read(&buffer, suffix, server_id, scheme) {
            Read::Plain(len, request) => (len, request),
            Read::Partial if buffer.len() < MAX_HEAD => {
                let read = tokio::select! {
                    biased;
                    read = idle.within(read_more(&mut client, &mut buffer)) => read,
                    () = &mut closing => break Served::Ended,
                };
                if !matches!(read, Some(Ok(1..))) {
                    break Served::Ended;
                }
                continue;
            }
            Read::Partial | Read::Other => break Served::HandOver(client, buffer),
        };
        let Ok(verified) = super::verified_session(control, main, &request.session, server_id).await else {
            break Served::HandOver(client, buffer);
        };
        let kept = bound.take().filter(|b| b.session.upstream == verified.upstream).map(|b| b.stream);
        let Some((mut upstream, answer)) =
            exchange(control, &verified.upstream, kept, &request.forwarded, &mut idle).await
        else {
            break Served::HandOver(client, buffer);
        };
        buffer.drain(..len);
        if request.websocket
            && let Some(switched) = Switched::read(&answer, request.cookie_path)
        {
            break join(control, main, client, upstream, switched, &buffer, verified).await;
        }
        let Ok(head) = Head::rewrite(&answer, &request) else {
            let _ = client.write_all(BAD_GATEWAY).await;
            break Served::Ended;
        };
        let client_closes = head.client_closes;
        match relay(&mut upstream, answer, head, &mut client, &mut idle).await {
            Ok(reusable) => {
                if reusable {
                    bound = Some(Bound { session: verified, stream: upstream });
                }
                if client_closes {
                    break Served::Ended;
                }
            }
            Err(Broken) => break Served::Ended,
        }
    };
    if let Some(Bound { session, stream }) = bound {
        control.ide.upstreams.keep(&session.upstream, stream);
    }
    served
}

/// A connection to a code-server, and the session whose upstream it is.
struct Bound {
    session: Arc<super::Verified>,
    stream: TcpStream,
}

/// The connection's one idle timer: a wait longer than [`IDLE`] without progress ends it.
/// One timer for the connection, pushed back only when it fires, costs less than one per wait.
struct Idle {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    last: tokio::time::Instant,
}

impl Idle {
    fn new() -> Idle {
        let now = tokio::time::Instant::now();
        Idle { timer: Box::pin(tokio::time::sleep_until(now + IDLE)), last: now }
    }

    /// `work`, unless it makes no progress for [`IDLE`].
    async fn within<T>(&mut self, work: impl std::future::Future<Output = T>) -> Option<T> {
        self.last = tokio::time::Instant::now();
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                // The work first: the timer is polled only while it waits.
                biased;
                done = &mut work => return Some(done),
                () = self.timer.as_mut() => {
                    if self.last.elapsed() >= IDLE {
                        return None;
                    }
                    self.timer.as_mut().reset(self.last + IDLE);
                }
            }
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    buffer.reserve(8192);
    stream.read_buf(buffer).await
}

/// What the start of a connection's buffer holds.
enum Read {
    /// A plain request, whose head is this long.
    Plain(usize, Plain),
    /// Not a whole head yet.
    Partial,
    /// Something for the general path.
    Other,
}

/// A request the fast path may answer.
struct Plain {
    /// A WebSocket upgrade from the IDE's own page.
    websocket: bool,
    /// The IDE cookie.
    session: String,
    /// `HEAD`: the answer has no body whatever it says.
    head: bool,
    /// The browser asked to close after this answer.
    close: bool,
    cookie_path: &'static str,
    /// The head sent on to code-server.
    forwarded: Vec<u8>,
}

impl Plain {
    /// Whether `buffer` starts with a plain `GET` or `HEAD` without a body (or a WebSocket
    /// upgrade from the IDE's own page), over HTTP/1.1, for the hosted IDE of `server_id`, with
    /// an IDE cookie, that is neither a link nor the IDE's root. Its head goes on as the
    /// browser sent it, but without hop-by-hop headers, headers that could lie about the
    /// origin, credentials or our cookies, and with the public scheme in `X-Forwarded-Proto`.
    fn read(buffer: &[u8], suffix: &str, server_id: i64, scheme: &str) -> Read {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let len = match request.parse(buffer) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Read::Partial,
            Err(_) => return Read::Other,
        };
        match Plain::from_parsed(&request, suffix, server_id, scheme, len) {
            Some(plain) => Read::Plain(len, plain),
            None => Read::Other,
        }
    }

    fn from_parsed(
        request: &httparse::Request<'_, '_>,
        suffix: &str,
        server_id: i64,
        scheme: &str,
        len: usize,
    ) -> Option<Plain> {
        let method = request.method?;
        if !(method == "GET" || method == "HEAD") || request.version != Some(1) {
            return None;
        }
        let target = request.path?;
        let (path, query) = target.split_once('?').map_or((target, None), |(p, q)| (p, Some(q)));
        if !path.starts_with('/')
            || (path == "/" && query.is_none())
            || super::query_param(query, "token").is_some()
        {
            return None;
        }
        let mut forwarded = Vec::with_capacity(len + 64);
        forwarded.extend_from_slice(method.as_bytes());
        forwarded.push(b' ');
        forwarded.extend_from_slice(target.as_bytes());
        forwarded.extend_from_slice(b" HTTP/1.1\r\n");
        let (mut hosts, mut session, mut close) = (0, None, false);
        let (mut host, mut upgrades, mut upgrade_asked, mut origin) = (None, 0, false, None);
        let mut cookies: Vec<&[u8]> = Vec::new();
        for header in request.headers.iter() {
            let name = header.name;
            let value = std::str::from_utf8(header.value).ok()?;
            if name.eq_ignore_ascii_case("host") {
                hosts += 1;
                host = Some(value);
                if super::hosted_server(value, suffix) != Some(server_id) {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("cookie") {
                // The first, as the general path reads it.
                if session.is_none() {
                    session = value
                        .split(';')
                        .find_map(|c| c.trim().strip_prefix("zlh_ide")?.strip_prefix('='))
                        .map(str::to_owned);
                }
                cookies.extend(
                    header
                        .value
                        .split(|b| *b == b';')
                        .map(<[u8]>::trim_ascii)
                        .filter(|c| !c.is_empty() && !c.starts_with(b"zlh_")),
                );
                continue;
            } else if name.eq_ignore_ascii_case("connection") {
                let tokens = || value.split(',').map(str::trim);
                close |= tokens().any(|t| t.eq_ignore_ascii_case("close"));
                upgrade_asked |= tokens().any(|t| t.eq_ignore_ascii_case("upgrade"));
            } else if name.eq_ignore_ascii_case("upgrade") {
                // Only a WebSocket, named alone.
                upgrades += 1;
                if !value.trim().eq_ignore_ascii_case("websocket") {
                    return None;
                }
            } else if name.eq_ignore_ascii_case("origin") {
                if origin.replace(value).is_some() {
                    return None;
                }
            } else if ["content-length", "transfer-encoding", "expect"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                return None;
            }
            if !super::proxy::never_forwarded(name) {
                header_line(&mut forwarded, name.as_bytes(), header.value);
            }
        }
        if hosts != 1 {
            return None;
        }
        // A WebSocket passes here only from the IDE's own page; any other goes to the general
        // path, which refuses it.
        let websocket = match (upgrade_asked, upgrades) {
            (false, 0) => false,
            (true, 1) if method == "GET" && origin == Some(&format!("{scheme}://{}", host?)) => true,
            _ => return None,
        };
        if !cookies.is_empty() {
            header_line(&mut forwarded, b"cookie", &cookies.join(&b"; "[..]));
        }
        header_line(&mut forwarded, b"x-forwarded-proto", scheme.as_bytes());
        if websocket {
            forwarded.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n");
        }
        forwarded.extend_from_slice(b"\r\n");
        Some(Plain {
            websocket,
            session: session?,
            head: method == "HEAD",
            close,
            cookie_path: "/",
            forwarded,
        })
    }
}

/// Sends `request` to `upstream` on `kept` or another kept connection, or a new one if the kept one fails
/// before any answer (code-server closed it meanwhile; a `GET` may be sent again); returns the
/// connection and what was read of the answer, at least its whole head.
async fn exchange(
    control: &ControlPlane,
    upstream: &str,
    kept: Option<TcpStream>,
    request: &[u8],
    idle: &mut Idle,
) -> Option<(TcpStream, Vec<u8>)> {
    if let Some(mut stream) = kept.filter(is_quiet).or_else(|| control.ide.upstreams.take(upstream))
        && let Some(Some(answer)) = idle.within(send(&mut stream, request)).await
    {
        return Some((stream, answer));
    }
    let mut stream = idle.within(TcpStream::connect(upstream)).await?.ok()?;
    let _ = stream.set_nodelay(true);
    let answer = idle.within(send(&mut stream, request)).await??;
    Some((stream, answer))
}

/// Writes a request and reads until the answer's head is complete.
async fn send(stream: &mut TcpStream, request: &[u8]) -> Option<Vec<u8>> {
    stream.write_all(request).await.ok()?;
    let mut answer = Vec::with_capacity(8192);
    loop {
        if read_more(stream, &mut answer).await.ok()? == 0 {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::Response::new(&mut headers).parse(&answer) {
            Ok(httparse::Status::Complete(_)) => return Some(answer),
            Ok(httparse::Status::Partial) if answer.len() < MAX_HEAD => {}
            _ => return None,
        }
    }
}

/// How an answer's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until code-server closes the connection.
    Close,
}

/// Why an answer could not be relayed; the connections are closed.
#[derive(Debug)]
struct Broken;

impl From<std::io::Error> for Broken {
    fn from(_: std::io::Error) -> Broken {
        Broken
    }
}

/// What the browser gets when code-server's answer makes no sense.
const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// code-server's answer head, rewritten for the browser: hop-by-hop headers dropped but the
/// framing, cookies held to the IDE.
struct Head {
    /// The head to write.
    out: Vec<u8>,
    /// The length of the head read.
    len: usize,
    body: Body,
    /// code-server closes the connection after this answer.
    upstream_closes: bool,
    /// The browser's connection closes after this answer.
    client_closes: bool,
}

impl Head {
    fn rewrite(answer: &[u8], request: &Plain) -> Result<Head, Broken> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(answer) else { return Err(Broken) };
        let status = response.code.ok_or(Broken)?;
        // Informational answers are not expected (nothing asked for them).
        if (100..200).contains(&status) {
            return Err(Broken);
        }
        let mut out = Vec::with_capacity(len + 64);
        out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", response.reason.unwrap_or("")).as_bytes());
        let (mut length, mut chunked) = (None, false);
        let mut upstream_closes = response.version == Some(0);
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(header.value).map_err(|_| Broken)?.trim();
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Broken);
                }
                let parsed: u64 = value.parse().map_err(|_| Broken)?;
                if length.replace(parsed).is_some_and(|earlier| earlier != parsed) {
                    return Err(Broken);
                }
                continue;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || !header.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(Broken);
                }
                chunked = true;
                continue;
            } else if name.eq_ignore_ascii_case("connection") {
                upstream_closes |=
                    header.value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
                continue;
            } else if name.eq_ignore_ascii_case("set-cookie") {
                set_cookie_line(&mut out, header.value, request.cookie_path)?;
                continue;
            } else if super::proxy::hop_by_hop(name) {
                continue;
            }
            header_line(&mut out, name.as_bytes(), header.value);
        }
        if chunked && length.is_some() {
            return Err(Broken);
        }
        if let Some(length) = length {
            header_line(&mut out, b"content-length", length.to_string().as_bytes());
        }
        let framing = match (length, chunked) {
            _ if request.head || status == 204 || status == 304 => Framing::Empty,
            (_, true) => {
                header_line(&mut out, b"transfer-encoding", b"chunked");
                Framing::Chunked
            }
            (Some(length), _) => Framing::Length(length),
            (None, false) => Framing::Close,
        };
        let client_closes = request.close || framing == Framing::Close;
        if client_closes {
            header_line(&mut out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
        Ok(Head { out, len, body: Body::new(framing), upstream_closes, client_closes })
    }
}

/// code-server's answer to a WebSocket upgrade, when it switched protocols.
struct Switched {
    /// What the browser gets: the head as code-server sent it, but cookies held to the IDE and
    /// no body framing (only the new protocol follows), then what code-server sent after it.
    out: Vec<u8>,
}

impl Switched {
    fn read(answer: &[u8], cookie_path: &str) -> Option<Switched> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(answer) else { return None };
        if response.code != Some(101) {
            return None;
        }
        let mut out = Vec::with_capacity(len + 32);
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
        for header in response.headers.iter() {
            let name = header.name;
            if name.eq_ignore_ascii_case("set-cookie") {
                set_cookie_line(&mut out, header.value, cookie_path).ok()?;
            } else if !name.eq_ignore_ascii_case("content-length")
                && !name.eq_ignore_ascii_case("transfer-encoding")
            {
                header_line(&mut out, name.as_bytes(), header.value);
            }
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&answer[len..]);
        Some(Switched { out })
    }
}

/// Joins the browser's WebSocket to code-server's, which switched protocols: the answer (and
/// whatever code-server sent after it) goes to the browser, what the browser sent after its
/// request goes to code-server, then [`super::joined::relay`] passes bytes both ways.
async fn join(
    control: &Arc<ControlPlane>,
    main: &Handle,
    mut client: TcpStream,
    mut upstream: TcpStream,
    switched: Switched,
    early: &[u8],
    verified: Arc<super::Verified>,
) -> Served {
    if client.write_all(&switched.out).await.is_ok() && upstream.write_all(early).await.is_ok() {
        // Watched on `main`, as it asks the store.
        let mut access = main.spawn(super::access_ends(Arc::clone(control), verified));
        super::joined::relay(client, upstream, async {
            let _ = (&mut access).await;
        })
        .await;
        access.abort();
    }
    Served::Ended
}

/// A `Set-Cookie` line from code-server, held to the IDE.
fn set_cookie_line(out: &mut Vec<u8>, value: &[u8], cookie_path: &str) -> Result<(), Broken> {
    let value = std::str::from_utf8(value).map_err(|_| Broken)?;
    out.extend_from_slice(b"set-cookie: ");
    out.extend_from_slice(scoped_cookie(value, cookie_path).as_bytes());
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The most read from code-server at a time while relaying a body: large files (extensions,
/// the workbench's scripts) then pass in a few system calls each.
const RELAY_READ: usize = 256 << 10;

/// Copies the answer to the browser: `head`, then its body from `answer` (what was read with
/// the head) and `upstream`, each step within `idle`. Returns whether code-server's connection
/// may take another request.
async fn relay(
    upstream: &mut TcpStream,
    mut answer: Vec<u8>,
    head: Head,
    client: &mut TcpStream,
    idle: &mut Idle,
) -> Result<bool, Broken> {
    let Head { mut out, len, mut body, mut upstream_closes, .. } = head;
    answer.drain(..len);
    // The head and what came with it in one write.
    let taken = body.take(&answer)?;
    // More than one answer: not a connection to keep.
    upstream_closes |= taken < answer.len();
    out.extend_from_slice(&answer[..taken]);
    idle.within(client.write_all(&out)).await.ok_or(Broken)??;
    let mut chunk = answer;
    while !body.done() {
        chunk.clear();
        chunk.reserve(RELAY_READ);
        if idle.within(upstream.read_buf(&mut chunk)).await.ok_or(Broken)?? == 0 {
            if body.framing == Framing::Close {
                return Ok(false);
            }
            return Err(Broken);
        }
        let taken = body.take(&chunk)?;
        upstream_closes |= taken < chunk.len();
        idle.within(client.write_all(&chunk[..taken])).await.ok_or(Broken)??;
    }
    Ok(!upstream_closes)
}

/// Follows a body as its bytes pass, to know where it ends.
struct Body {
    framing: Framing,
    /// Bytes left of a `Content-Length` body or of the current chunk's data.
    left: u64,
    chunk: ChunkState,
    /// Bytes of chunk sizes, extensions and trailers seen (bounded).
    overhead: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk's size (hex digits so far).
    Size {
        digits: u32,
    },
    /// After the size: an extension up to the line's end.
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// The most bytes of chunk sizes, extensions and trailers in one body.
const MAX_CHUNK_OVERHEAD: usize = 1 << 20;

impl Body {
    fn new(framing: Framing) -> Body {
        let left = if let Framing::Length(length) = framing { length } else { 0 };
        Body { framing, left, chunk: ChunkState::Size { digits: 0 }, overhead: 0 }
    }

    fn done(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunk == ChunkState::Done,
            Framing::Close => false,
        }
    }

    /// How many of `bytes` belong to the body (the rest would be another answer).
    fn take(&mut self, bytes: &[u8]) -> Result<usize, Broken> {
        match self.framing {
            Framing::Empty => Ok(0),
            Framing::Close => Ok(bytes.len()),
            Framing::Length(_) => {
                let taken = self.left.min(bytes.len() as u64);
                self.left -= taken;
                Ok(taken as usize)
            }
            Framing::Chunked => self.take_chunked(bytes),
        }
    }

    fn take_chunked(&mut self, bytes: &[u8]) -> Result<usize, Broken> {
        let mut at = 0;
        while at < bytes.len() && self.chunk != ChunkState::Done {
            if self.chunk == ChunkState::Data {
                let taken = self.left.min((bytes.len() - at) as u64);
                self.left -= taken;
                at += taken as usize;
                if self.left == 0 {
                    self.chunk = ChunkState::DataCr;
                }
                continue;
            }
            let byte = bytes[at];
            at += 1;
            self.overhead += 1;
            if self.overhead > MAX_CHUNK_OVERHEAD {
                return Err(Broken);
            }
            self.chunk = match (self.chunk, byte) {
                (ChunkState::Size { digits }, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    if digits >= 15 {
                        return Err(Broken);
                    }
                    let digit = (byte as char).to_digit(16).ok_or(Broken)?;
                    self.left = self.left * 16 + u64::from(digit);
                    ChunkState::Size { digits: digits + 1 }
                }
                (ChunkState::Size { digits }, b';' | b' ' | b'\t') if digits > 0 => ChunkState::Extension,
                (ChunkState::Size { digits }, b'\r') if digits > 0 => ChunkState::SizeLf,
                (ChunkState::Extension, b'\r') => ChunkState::SizeLf,
                (ChunkState::Extension, b'\n') => return Err(Broken),
                (ChunkState::Extension, _) => ChunkState::Extension,
                (ChunkState::SizeLf, b'\n') if self.left == 0 => ChunkState::TrailerStart,
                (ChunkState::SizeLf, b'\n') => ChunkState::Data,
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataLf, b'\n') => ChunkState::Size { digits: 0 },
                (ChunkState::TrailerStart, b'\r') => ChunkState::FinalLf,
                (ChunkState::TrailerStart | ChunkState::TrailerLine, b'\n') => return Err(Broken),
                (ChunkState::TrailerLine, b'\r') => ChunkState::TrailerLf,
                (ChunkState::TrailerStart | ChunkState::TrailerLine, _) => ChunkState::TrailerLine,
                (ChunkState::TrailerLf, b'\n') => ChunkState::TrailerStart,
                (ChunkState::FinalLf, b'\n') => ChunkState::Done,
                _ => return Err(Broken),
            };
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(parts: &[&[u8]]) -> Result<(usize, bool), Broken> {
        let mut body = Body::new(Framing::Chunked);
        let mut taken = 0;
        for part in parts {
            taken += body.take(part)?;
        }
        Ok((taken, body.done()))
    }

    #[test]
    fn a_chunked_body_ends_where_its_last_chunk_and_trailers_end() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        assert_eq!(chunked(&[body]).expect("valid").0, body.len());
        assert!(chunked(&[body]).expect("valid").1);
        // Byte by byte, the same.
        let parts: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(chunked(&parts).expect("valid"), (body.len(), true));
        // What follows the end is not taken.
        let mut two = body.to_vec();
        two.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(chunked(&[&two]).expect("valid"), (body.len(), true));
        // Not finished yet.
        assert_eq!(chunked(&[b"A\r\n0123"]).expect("valid"), (7, false));
    }

    #[test]
    fn a_malformed_chunked_body_is_refused() {
        for bad in [&b"x\r\n"[..], b"\r\n", b"5\nhello", b"5\r\nhelloX", b"1234567890abcdef0\r\n", b"0\r\n\n"]
        {
            assert!(chunked(&[bad]).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn a_kept_connection_that_was_sent_something_is_not_taken_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let upstreams = Upstreams::default();
        upstreams.keep(&address, TcpStream::connect(&address).await.expect("connect"));
        let (mut server, _) = listener.accept().await.expect("accept");
        let quiet = upstreams.take(&address).expect("a quiet connection is taken");
        upstreams.keep(&address, quiet);
        // An answer nobody asked for: once the reactor saw it, the connection is dropped.
        server.write_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n").await.expect("write");
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(stream) = upstreams.take(&address) {
            assert!(Instant::now() < deadline, "still taken");
            upstreams.keep(&address, stream);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(upstreams.take(&address).is_none());
    }

    #[test]
    fn a_length_body_takes_only_its_length() {
        let mut body = Body::new(Framing::Length(5));
        assert_eq!(body.take(b"hel").expect("ok"), 3);
        assert!(!body.done());
        assert_eq!(body.take(b"loHTTP").expect("ok"), 2);
        assert!(body.done());
    }
}
