//! The browser IDE: `POST /api/dev/{id}/ide-token` issues a short-lived, single-use link;
//! opening it sets a cookie and redirects to the clean URL; every later request carries the
//! cookie and is proxied to the server's code-server.
//!
//! Two forms. **Hosted** (canonical): `dev-<id>.<suffix>` is the IDE of server `<id>`, an
//! origin of its own, with a host-only cookie `zlh_ide`. **Path**: `/__ide/<id>/` at an origin
//! of its own too (`ide.path_origin`, never the portal's), cookie `zlh_ide_<id>` scoped to that
//! path (switchable off). Links answer with `Referrer-Policy: no-referrer` and leave no token
//! in the address bar; query strings are never logged. Every request re-checks that the server
//! is a dev server of the cookie's user (cached a few seconds), and every WebSocket upgrade
//! must come from the IDE's own origin (sibling `dev-*` hosts are same-site).

mod fast;
mod front;
mod joined;
pub mod proxy;
mod worker;

pub use front::{Front, listen};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::{Json, Router};
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::api::{IdeLink, Lifecycle};
use zlh_proto::time::now_secs;

use crate::ControlPlane;
use crate::access::{CurrentUser, ServerId};
use crate::auth::random_token;
use crate::auth::tokens::{Claims, TokenKind, TokenSigner};
use crate::db::Store;

/// The IDE's routes: links (`/api/dev/{id}/ide-token`) and the path form.
pub(crate) fn routes() -> Router<Arc<ControlPlane>> {
    Router::new()
        .route("/api/dev/{id}/ide-token", post(token))
        .route("/api/dev/{id}/ide", get(path_form))
        .route("/__ide/{id}", any(path_form))
        // `{*rest}` matches only a non-empty rest: the IDE's root needs its own route.
        .route("/__ide/{id}/", any(path_form))
        .route("/__ide/{id}/{*rest}", any(path_form))
}

#[utoipa::path(post, path = "/api/dev/{id}/ide-token", tag = "dev", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = IdeLink), (status = 404, body = zlh_proto::ErrorBody)))]
async fn token(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<IdeLink>, ApiError> {
    let server = crate::access::dev_server(
        &control,
        &user.0,
        id,
        crate::access::Need::To(zlh_proto::api::Permission::Ide),
    )
    .await?;
    if server.lifecycle != Lifecycle::Ready || !server.enable_code_server {
        return Err(ApiError::new(
            ErrorCode::NotRunning,
            "this dev server has no code-server (create it with enable_code_server)",
        ));
    }
    let ttl = control.config.ide.token_ttl;
    let token = control.ide.issue(user.0.id, id, &user.1, ttl);
    let url = link(&control, id, &token);
    crate::activity::Event::by(&user, "ide_opened").on(&server).record(&control).await;
    Ok(Json(IdeLink { token, url, expires_in: ttl.as_secs() }))
}

/// The IDE's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(token))]
pub(crate) struct IdeDoc;

/// Where code-server opens when the agent has not said yet.
const WORKSPACE: &str = "/home/dev/workspace";
/// How long a verified cookie's access decision is reused: code-server loads a hundred files
/// at once, and re-verifying the signature and re-reading the server for each costs more than
/// proxying. A revoked server or account is refused again within this time.
const SESSION_CACHE: Duration = Duration::from_secs(5);
/// A remembered decision this old is verified again in the background by the first request
/// that finds it so, while the others use it: a busy IDE's requests do not all stop to ask the
/// store at once each time it would expire.
const SESSION_REFRESH: Duration = Duration::from_secs(4);
/// Most cached sessions kept (the cache is dropped whole past this).
const SESSION_CACHE_SIZE: usize = 10_000;

/// What a verified IDE cookie stands for.
#[derive(Debug)]
struct Verified {
    server_id: i64,
    /// code-server's address.
    upstream: String,
    user_id: i64,
    /// The account session that opened the IDE.
    account_session: String,
    at: Instant,
    /// Its verification again ([`SESSION_REFRESH`]) started.
    refreshing: AtomicBool,
}

/// The IDE's keys and memory.
#[derive(Debug)]
pub struct Ide {
    signer: TokenSigner,
    /// Recently verified cookies.
    sessions: Mutex<HashMap<String, Arc<Verified>>>,
    proxy: proxy::IdeProxy,
    /// The fast path's connections to code-servers.
    upstreams: fast::Upstreams,
    /// `dev-<id>.<suffix>` hosts are IDEs, when set.
    host_suffix: Option<String>,
    /// The public URL's scheme.
    scheme: String,
}

/// Which form a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Hosted,
    Path,
}

impl Ide {
    /// An IDE signing with `signer`, for the hosts and scheme of `config`.
    pub fn new(signer: TokenSigner, config: &crate::ControlConfig) -> Ide {
        let public = config.public_url();
        Ide {
            signer,
            sessions: Mutex::new(HashMap::new()),
            proxy: proxy::IdeProxy::default(),
            upstreams: fast::Upstreams::default(),
            host_suffix: config.ide_host_suffix(),
            scheme: public.split_once("://").map_or("http", |(s, _)| s).to_owned(),
        }
    }

    /// The code-server address for a cookie verified less than [`SESSION_CACHE`] ago.
    fn cached_session(&self, cookie: &str, server_id: i64) -> Option<Arc<Verified>> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let verified = sessions.get(cookie)?;
        (verified.server_id == server_id && verified.at.elapsed() < SESSION_CACHE)
            .then(|| Arc::clone(verified))
    }

    fn forget_session(&self, cookie: &str) {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(cookie);
    }

    fn remember_session(&self, cookie: &str, verified: Arc<Verified>) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= SESSION_CACHE_SIZE {
            sessions.clear();
        }
        sessions.insert(cookie.to_owned(), verified);
    }

    /// A link token for `user_id` on server `server_id`, from the account session `session`
    /// (the IDE it opens lives no longer than that session).
    fn issue(&self, user_id: i64, server_id: i64, session: &str, ttl: Duration) -> String {
        let iat = now_secs();
        self.signer.sign(&Claims {
            sub: user_id.to_string(),
            kind: TokenKind::IdeLink,
            iat,
            exp: iat + ttl.as_secs().max(1),
            sid: Some(session.to_owned()),
            vmid: Some(server_id),
            jti: Some(random_token(12)),
        })
    }

    /// Spends a link token: valid, for this server, and never used before (the store keeps
    /// spent links until they expire, across restarts).
    async fn redeem(&self, store: &dyn Store, token: &str, server_id: i64) -> Result<Claims, ApiError> {
        let claims = self.signer.verify(token, TokenKind::IdeLink, now_secs()).map_err(|e| match e {
            crate::auth::tokens::TokenError::Expired => ApiError::new(
                ErrorCode::TokenExpired,
                "this IDE link has expired; open the IDE again from the portal",
            ),
            crate::auth::tokens::TokenError::Invalid => ApiError::new(
                ErrorCode::TokenInvalid,
                "this IDE link is not valid; open the IDE again from the portal",
            ),
        })?;
        let (Some(vmid), Some(jti)) = (claims.vmid, claims.jti.clone()) else {
            return Err(ApiError::new(ErrorCode::TokenInvalid, "this IDE link is not valid"));
        };
        if vmid != server_id {
            return Err(ApiError::new(ErrorCode::TokenInvalid, "this IDE link is for another server"));
        }
        let fresh = store.spend_link(&jti, claims.exp as i64, now_secs() as i64).await?;
        if !fresh {
            return Err(ApiError::new(
                ErrorCode::TokenReused,
                "this IDE link was already used; open the IDE again from the portal",
            ));
        }
        Ok(claims)
    }

    fn session(&self, claims: &Claims, ttl: Duration) -> String {
        let iat = now_secs();
        self.signer.sign(&Claims {
            sub: claims.sub.clone(),
            kind: TokenKind::IdeSession,
            iat,
            exp: iat + ttl.as_secs().max(1),
            sid: claims.sid.clone(),
            vmid: claims.vmid,
            jti: None,
        })
    }
}

/// The server id of a hosted IDE host (`dev-101.<suffix>[:port]`).
fn hosted_server(host: &str, suffix: &str) -> Option<i64> {
    let host = host
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h);
    host.strip_suffix(suffix)?.strip_suffix('.')?.strip_prefix("dev-")?.parse().ok()
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The link of a fresh token: hosted (`<scheme>://dev-<id>.<suffix>[:port]/?token=`) or path.
fn link(control: &ControlPlane, server_id: i64, token: &str) -> String {
    let public = control.config.public_url();
    let hosted =
        control.config.ide_host_suffix().filter(|_| control.config.ide.return_hosted_url.unwrap_or(true));
    match hosted {
        Some(suffix) => {
            let (scheme, rest) = public.split_once("://").unwrap_or(("https", &public));
            let port = rest
                .split('/')
                .next()
                .and_then(|host| host.rsplit_once(':'))
                .map(|(_, p)| format!(":{p}"))
                .unwrap_or_default();
            format!("{scheme}://dev-{server_id}.{suffix}{port}/?token={token}")
        }
        None => {
            let origin = control.config.ide_path_origin().unwrap_or(public);
            format!("{origin}/api/dev/{server_id}/ide?token={token}")
        }
    }
}

/// The answer to a request whose IDE cookie is missing or no longer stands.
fn session_ended() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "open the IDE from the portal (this session has no IDE cookie, or it expired)",
    )
}

/// What the IDE cookie `session` stands for, if it still stands for server `server_id`:
/// remembered, or verified afresh on `main` (whose reactor the store's connections belong to;
/// the fast path's threads have their own).
async fn verified_session(
    control: &Arc<ControlPlane>,
    main: &tokio::runtime::Handle,
    session: &str,
    server_id: i64,
) -> Result<Arc<Verified>, ApiError> {
    if let Some(verified) = remembered_session(control, main, session, server_id) {
        return Ok(verified);
    }
    let (control, session) = (Arc::clone(control), session.to_owned());
    main.spawn(async move { verify_session(&control, &session, server_id).await })
        .await
        .unwrap_or_else(|_| Err(session_ended()))
}

/// The decision remembered for the IDE cookie `session` on server `server_id`, if made less
/// than [`SESSION_CACHE`] ago. Past [`SESSION_REFRESH`], the first to find it starts verifying
/// it again on `main` (whose reactor the store's connections belong to); if it no longer
/// stands, it is forgotten, and the next request is refused.
fn remembered_session(
    control: &Arc<ControlPlane>,
    main: &tokio::runtime::Handle,
    session: &str,
    server_id: i64,
) -> Option<Arc<Verified>> {
    let verified = control.ide.cached_session(session, server_id)?;
    if verified.at.elapsed() >= SESSION_REFRESH && !verified.refreshing.swap(true, Ordering::AcqRel) {
        let (control, session) = (Arc::clone(control), session.to_owned());
        main.spawn(async move {
            if verify_session(&control, &session, server_id).await.is_err() {
                control.ide.forget_session(&session);
            }
        });
    }
    Some(verified)
}

/// Verifies the IDE cookie `session` for server `server_id` (signature, server, the account
/// session that opened the IDE, and the account's access to the server) and remembers what it
/// stands for.
async fn verify_session(
    control: &ControlPlane,
    session: &str,
    server_id: i64,
) -> Result<Arc<Verified>, ApiError> {
    // Dated from before the store is asked: a revocation while it answers counts from here.
    let at = Instant::now();
    let claims =
        control.ide.signer.verify(session, TokenKind::IdeSession, now_secs()).map_err(|_| session_ended())?;
    if claims.vmid != Some(server_id) {
        return Err(session_ended());
    }
    let user_id: i64 = claims.sub.parse().map_err(|_| session_ended())?;
    // The account session that opened the IDE must still stand (checked again every few
    // seconds, as the decision is remembered).
    let account_session = claims.sid.as_deref().ok_or_else(session_ended)?;
    if !crate::access::session_lives(control, account_session, user_id).await {
        return Err(session_ended());
    }
    let upstream = crate::access::ide_upstream(control, user_id, server_id).await?;
    let verified = Arc::new(Verified {
        server_id,
        upstream,
        user_id,
        account_session: account_session.to_owned(),
        at,
        refreshing: AtomicBool::new(false),
    });
    control.ide.remember_session(session, Arc::clone(&verified));
    Ok(verified)
}

/// Serves one IDE request of either form: link bootstrap, the folder redirect, or the proxy.
async fn serve(
    control: &Arc<ControlPlane>,
    server_id: i64,
    form: Form,
    request: Request,
) -> Result<Response<Body>, ApiError> {
    let (cookie_name, cookie_path, prefix) = match form {
        Form::Hosted => ("zlh_ide".to_owned(), "/".to_owned(), String::new()),
        Form::Path => {
            (format!("zlh_ide_{server_id}"), format!("/__ide/{server_id}/"), format!("/__ide/{server_id}"))
        }
    };
    let scheme = control.ide.scheme.as_str();
    let path = request.uri().path().strip_prefix(&prefix).unwrap_or("").to_owned();
    if form == Form::Path && path.is_empty() && request.uri().path().starts_with("/__ide/") {
        // `/__ide/<id>` → `/__ide/<id>/`: code-server's relative URLs need the slash.
        return Ok(redirect(&cookie_path));
    }
    if let Some(token) = query_param(request.uri().query(), "token") {
        let claims = control.ide.redeem(control.store.as_ref(), token, server_id).await?;
        let user_id: i64 = claims
            .sub
            .parse()
            .map_err(|_| ApiError::new(ErrorCode::TokenInvalid, "this IDE link is not valid"))?;
        let account_session = claims.sid.as_deref().unwrap_or_default();
        if !crate::access::session_lives(control, account_session, user_id).await {
            return Err(ApiError::new(
                ErrorCode::TokenInvalid,
                "the session that made this IDE link has ended",
            ));
        }
        crate::access::ide_upstream(control, user_id, server_id).await?;
        let ttl = control.config.ide.session_ttl;
        let secure = if scheme == "https" { "; Secure" } else { "" };
        let set_cookie = format!(
            "{cookie_name}={}; Path={cookie_path}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            control.ide.session(&claims, ttl),
            ttl.as_secs()
        );
        let mut response = redirect(&cookie_path);
        if let Ok(value) = HeaderValue::from_str(&set_cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        tracing::info!(server_id, user_id, "IDE opened");
        return Ok(response);
    }
    let session = crate::access::cookies::read(request.headers(), &cookie_name).ok_or_else(session_ended)?;
    let verified = verified_session(control, &tokio::runtime::Handle::current(), session, server_id).await?;
    if path == "/" && request.uri().query().is_none() {
        let status = control.cache.get_many(&[server_id]).await.remove(&server_id);
        let folder = status.and_then(|s| s.detail?.workspace_root).unwrap_or_else(|| WORKSPACE.to_owned());
        return Ok(redirect(&format!("{cookie_path}?folder={folder}")));
    }
    if proxy_is_websocket(&request) && !same_origin(&request, scheme) {
        tracing::warn!(server_id, "IDE WebSocket upgrade from a foreign origin refused");
        return Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            "the IDE's WebSockets open only from the IDE's own page",
        ));
    }
    let path_and_query = match request.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    let revoked = access_ends(Arc::clone(control), Arc::clone(&verified));
    Ok(control
        .ide
        .proxy
        .forward(request, &verified.upstream, &path_and_query, scheme, &cookie_path, revoked)
        .await)
}

/// Resolves when an IDE WebSocket opened with `verified` must close: its account session
/// ended or its account may no longer use the IDE (asked again at once whenever access changes
/// anywhere), or this replica stops. The socket counts as open while this is awaited.
async fn access_ends(control: Arc<ControlPlane>, verified: Arc<Verified>) {
    let mut open = control.drain.socket();
    let mut revocations = control.revocations.watch();
    let need = crate::access::Need::To(zlh_proto::api::Permission::Ide);
    let Verified { account_session, user_id, server_id, .. } = verified.as_ref();
    loop {
        let announced = tokio::select! {
            announced = revocations.changed() => announced,
            () = open.closing() => return,
        };
        if !crate::access::still_allowed(&control, account_session, *user_id, *server_id, need, announced)
            .await
        {
            tracing::info!(server_id, "IDE connection closed: its session or access ended");
            return;
        }
    }
}

fn proxy_is_websocket(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether `Origin` is `<scheme>://<Host>`: the IDE page itself.
fn same_origin(request: &Request, scheme: &str) -> bool {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or_default();
    !host.is_empty() && origin == format!("{scheme}://{host}")
}

fn answer(outcome: Result<Response<Body>, ApiError>) -> Response<Body> {
    outcome.unwrap_or_else(IntoResponse::into_response)
}

/// Middleware in front of everything: requests for a hosted IDE host never reach the API.
pub async fn hosted(
    State(control): State<Arc<ControlPlane>>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let server = control.ide.host_suffix.as_deref().and_then(|suffix| hosted_server(host, suffix));
    match server {
        Some(server_id) => answer(serve(&control, server_id, Form::Hosted, request).await),
        None => next.run(request).await,
    }
}

/// `/__ide/{id}` and everything below it (and `/api/dev/{id}/ide`, the path form's link).
async fn path_form(State(control): State<Arc<ControlPlane>>, request: Request) -> Response<Body> {
    // Only at its own origin: an IDE page (a customer's `/proxy/<port>/` among them) on the
    // portal's origin could read what the portal keeps there.
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let at_its_origin = control
        .config
        .ide_path_origin()
        .and_then(|origin| origin.split_once("://").map(|(_, authority)| authority.to_owned()))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
    if !at_its_origin {
        return ApiError::new(ErrorCode::NotFound, "no such route").into_response();
    }
    let path = request.uri().path();
    let id = path
        .strip_prefix("/__ide/")
        .or_else(|| path.strip_prefix("/api/dev/"))
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| id.parse::<i64>().ok());
    let Some(server_id) = id else {
        return ApiError::not_found("dev server").into_response();
    };
    if path.starts_with("/api/dev/") && query_param(request.uri().query(), "token").is_none() {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "open the IDE with the link from POST /api/dev/{id}/ide-token",
        )
        .into_response();
    }
    answer(serve(&control, server_id, Form::Path, request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_hosts_are_recognised_strictly() {
        assert_eq!(hosted_server("dev-101.localhost:8080", "localhost"), Some(101));
        assert_eq!(hosted_server("dev-7.zerolaghub.dev", "zerolaghub.dev"), Some(7));
        assert_eq!(hosted_server("dev-7.evil.zerolaghub.dev.attacker.com", "zerolaghub.dev"), None);
        assert_eq!(hosted_server("xdev-7.localhost", "localhost"), None);
        assert_eq!(hosted_server("dev-x.localhost", "localhost"), None);
        assert_eq!(hosted_server("127.0.0.1:8080", "localhost"), None);
    }

    #[tokio::test]
    async fn a_session_in_use_is_verified_again_before_it_expires_without_making_requests_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::ControlConfig::load(&format!("data_dir = {:?}\n", dir.path()), Vec::new())
            .expect("config");
        let control = crate::ControlPlane::open(config, "/nonexistent/zlh".into()).await.expect("open");
        let store = control.store.as_ref();
        let user = store
            .create_user("a@example.com", "unused", zlh_proto::api::Role::User, true, 1)
            .await
            .expect("user");
        store.create_session("account", user.id, b"refresh", i64::MAX, 1).await.expect("session");
        let endpoint = crate::registry::AgentEndpoint {
            url: zlh_proto::Secret::new("http://127.0.0.1:9"),
            secret: zlh_proto::Secret::new("unused"),
            ide: Some(zlh_proto::Secret::new("127.0.0.1:9")),
        };
        let server = crate::provision::ExternalServer {
            owner_id: user.id,
            name: "dev".into(),
            kind: zlh_proto::api::ServerKind::Dev,
            endpoint,
        };
        let id = crate::provision::record_external(store, server).await.expect("server");
        let link = Claims {
            sub: user.id.to_string(),
            kind: TokenKind::IdeLink,
            iat: 0,
            exp: 0,
            sid: Some("account".into()),
            vmid: Some(id),
            jti: None,
        };
        let cookie = control.ide.session(&link, Duration::from_secs(3600));
        let main = tokio::runtime::Handle::current();
        let fresh = verified_session(&control, &main, &cookie, id).await.expect("verified");
        // A decision about to expire: every request gets it at once; the first starts one
        // verification in the background.
        let aged = |fresh: &Verified| Verified {
            server_id: fresh.server_id,
            upstream: fresh.upstream.clone(),
            user_id: fresh.user_id,
            account_session: fresh.account_session.clone(),
            at: Instant::now() - SESSION_REFRESH,
            refreshing: AtomicBool::new(false),
        };
        let remembered = |verified: &Arc<Verified>| {
            remembered_session(&control, &main, &cookie, id).is_some_and(|got| Arc::ptr_eq(&got, verified))
        };
        let old = Arc::new(aged(&fresh));
        control.ide.remember_session(&cookie, Arc::clone(&old));
        assert!(remembered(&old) && remembered(&old), "answered from memory meanwhile");
        assert!(old.refreshing.load(Ordering::Acquire));
        let deadline = Instant::now() + Duration::from_secs(10);
        let settled = async |done: &dyn Fn(Option<Arc<Verified>>) -> bool| {
            while !done(control.ide.cached_session(&cookie, id)) {
                assert!(Instant::now() < deadline, "not verified again within 10 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        settled(&|now| now.is_some_and(|now| now.at > old.at + SESSION_REFRESH / 2)).await;
        // Once the account session ended, the next verification forgets the decision, and the
        // request after it is refused.
        store.revoke_session("account", 2).await.expect("revoke");
        let old = Arc::new(aged(&fresh));
        control.ide.remember_session(&cookie, Arc::clone(&old));
        assert!(remembered(&old));
        settled(&|now| now.is_none()).await;
        assert!(verified_session(&control, &main, &cookie, id).await.is_err());
    }

    #[tokio::test]
    async fn link_tokens_are_single_use_even_across_restarts_and_bound_to_their_server() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("zlh.db").display().to_string();
        let store = crate::db::SqliteStore::open(&database).await.expect("store");
        let config = crate::ControlConfig::load("", Vec::new()).expect("config");
        let ide = Ide::new(TokenSigner::new(zlh_proto::Secret::new("ide-key")), &config);
        let token = ide.issue(1, 101, "session", Duration::from_secs(60));
        let redeem = async |ide: &Ide, store: &dyn Store, token: &str, id| ide.redeem(store, token, id).await;
        assert_eq!(
            redeem(&ide, &store, &token, 102).await.expect_err("wrong server").code,
            ErrorCode::TokenInvalid
        );
        assert!(redeem(&ide, &store, &token, 101).await.is_ok());
        assert_eq!(redeem(&ide, &store, &token, 101).await.expect_err("reused").code, ErrorCode::TokenReused);
        // A control plane started again on the same database remembers it.
        drop(store);
        let store = crate::db::SqliteStore::open(&database).await.expect("store again");
        let restarted = Ide::new(TokenSigner::new(zlh_proto::Secret::new("ide-key")), &config);
        let again = redeem(&restarted, &store, &token, 101).await;
        assert_eq!(again.expect_err("reused after a restart").code, ErrorCode::TokenReused);
        let other_key = Ide::new(TokenSigner::new(zlh_proto::Secret::new("another-key")), &config);
        let forged = other_key.issue(1, 101, "session", Duration::from_secs(60));
        assert_eq!(
            redeem(&ide, &store, &forged, 101).await.expect_err("forged").code,
            ErrorCode::TokenInvalid
        );
    }
}
