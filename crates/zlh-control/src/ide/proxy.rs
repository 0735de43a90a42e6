//! A streaming reverse proxy to code-server, for HTTP and WebSocket.
//!
//! Bodies stream both ways (hyper bodies in and out, never collected). A WebSocket upgrade is
//! forwarded as an HTTP upgrade, and once both sides switched protocols their byte streams are
//! joined with `copy_bidirectional`: frames pass untouched, without being parsed.
//!
//! What code-server needs (DESIGN "Facts from the field"): the `Host` the browser used, its
//! `Origin` untouched, `Upgrade`/`Connection` on upgrades, and no client-supplied
//! `X-Forwarded-Host`/`Forwarded` (it would compare `Origin` against those). What it must not
//! get: our cookies and any `Authorization`.

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use zlh_http::ApiError;
use zlh_proto::ErrorCode;

/// Headers that describe one connection, not the request: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Headers a client could use to lie about where it came from, or that carry our credentials.
const NEVER_UPSTREAM: &[&str] = &[
    "authorization",
    "x-forwarded-host",
    "forwarded",
    "x-forwarded-proto",
    "x-forwarded-for",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
];

/// Whether a header describes one connection (never forwarded either way).
pub(super) fn hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// Whether a request header stays here: hop-by-hop, or one a client could lie with.
pub(super) fn never_forwarded(name: &str) -> bool {
    hop_by_hop(name) || NEVER_UPSTREAM.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The proxy's HTTP client (a keep-alive pool per code-server).
#[derive(Debug, Clone)]
pub struct IdeProxy {
    client: Client<HttpConnector, Body>,
}

impl Default for IdeProxy {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        IdeProxy { client }
    }
}

fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// A browser opening a page (not a script fetching a resource): it gets a page, not JSON.
fn is_page_load(request: &Request<Body>) -> bool {
    request.method() == axum::http::Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

/// What someone who opens the IDE sees while code-server is not answering (most often: it is
/// still loading, which can take seconds): a page that tries again by itself.
fn not_answering_page() -> Response<Body> {
    const PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
        <meta http-equiv=\"refresh\" content=\"3\"><title>The IDE is starting</title>\
        <meta name=\"viewport\" content=\"width=device-width\"></head>\
        <body style=\"font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem\">\
        <h1>The IDE is starting</h1><p>code-server is not answering yet. This page tries again \
        every few seconds.</p><p>If it keeps showing, start code-server from the server's page in \
        the portal.</p></body></html>";
    let mut response = Response::new(Body::from(PAGE));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The `Cookie` header without our cookies (`zlh_*`: the IDE's, and the portal's session, which
/// a browser also sends to an IDE origin on the portal's host and another port).
fn without_our_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with("zlh_"))
        .collect();
    (!kept.is_empty()).then(|| HeaderValue::from_str(&kept.join("; ")).ok()).flatten()
}

impl IdeProxy {
    /// Forwards `request` to `upstream` (`host:port`) as `path_and_query`, answering with
    /// code-server's response (or, for a WebSocket, switching protocols and joining both).
    /// `cookie_path` is where the IDE's own cookies live (`/` on its own host, `/__ide/<id>/`
    /// in the path form): every cookie code-server (or a page it serves) sets is held to it.
    /// A joined WebSocket is closed when `revoked` completes.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        upstream: &str,
        path_and_query: &str,
        public_scheme: &str,
        cookie_path: &str,
        revoked: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Response<Body> {
        let websocket = is_websocket(request.headers());
        let navigation = is_page_load(&request);
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let Ok(uri) =
            Uri::builder().scheme("http").authority(upstream).path_and_query(path_and_query).build()
        else {
            return ApiError::new(ErrorCode::BadRequest, "that path cannot be forwarded").into_response();
        };
        // Edit the request's own headers in place: cheaper than copying them all.
        let headers = &mut parts.headers;
        let cookies = without_our_cookies(headers);
        for name in HOP_BY_HOP.iter().chain(NEVER_UPSTREAM) {
            headers.remove(*name);
        }
        headers.remove(header::COOKIE);
        if let Some(cookie) = cookies {
            headers.insert(header::COOKIE, cookie);
        }
        if let Ok(scheme) = HeaderValue::from_str(public_scheme) {
            headers.insert(HeaderName::from_static("x-forwarded-proto"), scheme);
        }
        if websocket {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        parts.uri = uri;
        parts.version = axum::http::Version::HTTP_11;
        let upstream_request = Request::from_parts(parts, body);
        let mut response = match self.client.request(upstream_request).await {
            Ok(response) => response,
            Err(e) => {
                tracing::warn!(error = %e, "code-server did not answer");
                if navigation {
                    return not_answering_page();
                }
                return ApiError::new(
                    ErrorCode::AgentUnreachable,
                    "code-server does not answer; start it from the server's page and try again",
                )
                .into_response();
            }
        };
        if let Some(client_upgrade) =
            client_upgrade.filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS)
        {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        super::joined::on_runtime(TokioIo::new(client), TokioIo::new(upstream), revoked)
                            .await;
                    }
                    Err(e) => tracing::debug!(error = %e, "WebSocket upgrade did not complete"),
                }
            });
            let (mut parts, _) = response.into_parts();
            // Keep Upgrade/Connection on a 101: they are the answer.
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            hold_cookies(&mut parts.headers, cookie_path);
            return Response::from_parts(parts, Body::empty());
        }
        let (mut parts, body) = response.into_parts();
        for name in HOP_BY_HOP {
            parts.headers.remove(*name);
        }
        hold_cookies(&mut parts.headers, cookie_path);
        Response::from_parts(parts, Body::new(body))
    }
}

/// Every `Set-Cookie` of an answer held to the IDE ([`scoped_cookie`]).
fn hold_cookies(headers: &mut HeaderMap, cookie_path: &str) {
    let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        let scoped = scoped_cookie(&String::from_utf8_lossy(cookie.as_bytes()), cookie_path);
        if let Ok(value) = HeaderValue::from_str(&scoped) {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

/// A `Set-Cookie` from the upstream, held to the IDE: its `Path` and `Domain` are dropped and
/// `Path=<cookie_path>` set, so a page in someone's IDE can set no cookie for the portal (in the
/// path form, its origin) or for sibling hosts (a `Domain` covering them).
pub(super) fn scoped_cookie(value: &str, cookie_path: &str) -> String {
    let mut parts = value.split(';').map(str::trim).filter(|part| {
        let name = part.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
        name != "path" && name != "domain"
    });
    let mut scoped = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        scoped.push_str("; ");
        scoped.push_str(part);
    }
    scoped.push_str(&format!("; Path={cookie_path}"));
    scoped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_cookies_are_held_to_the_ide() {
        assert_eq!(
            scoped_cookie("vscode-tkn=abc; Path=/; Domain=.localhost; HttpOnly", "/__ide/101/"),
            "vscode-tkn=abc; HttpOnly; Path=/__ide/101/"
        );
        assert_eq!(scoped_cookie("a=b", "/"), "a=b; Path=/");
        assert_eq!(scoped_cookie("a=b; path=/x; SameSite=Lax", "/"), "a=b; SameSite=Lax; Path=/");
    }

    #[test]
    fn only_our_cookies_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("zlh_ide=secret; theme=dark"));
        headers.append(header::COOKIE, HeaderValue::from_static("zlh_ide_101=also-secret"));
        headers.append(header::COOKIE, HeaderValue::from_static("zlh_access=the-portal-session"));
        assert_eq!(without_our_cookies(&headers), Some(HeaderValue::from_static("theme=dark")));
        let mut only_ours = HeaderMap::new();
        only_ours.append(header::COOKIE, HeaderValue::from_static("zlh_ide=secret"));
        assert_eq!(without_our_cookies(&only_ours), None);
    }

    #[test]
    fn websocket_upgrades_are_recognised_in_any_case() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_websocket(&headers));
        headers.remove(header::UPGRADE);
        assert!(!is_websocket(&headers));
    }
}
