//! Who is asking, and what they may touch: the one place that decides access to a server.
//!
//! Architecture Invariant: every route that takes a server id, and every IDE request, resolves
//! it here, saying what it needs ([`Need`]). A server is yours if you own it, or any server if
//! you are an admin; an account whose (proven) address its owner invited may see it and do what it was granted (a 403
//! names what is missing); a suspended account touches nothing. Anything else is a 404,
//! indistinguishable from no server at all. Live connections (consoles, IDE WebSockets) ask
//! again whenever [`Revocations`] says access changed somewhere.

pub mod cookies;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use zlh_http::ApiError;
use zlh_proto::ErrorCode;
use zlh_proto::api::{Lifecycle, Permission, Role, ServerKind, TwoFactorPolicy};
use zlh_proto::time::now_secs;

use crate::ControlPlane;
use crate::auth::tokens::{TokenError, TokenKind};
use crate::db::{Server, User};
use crate::registry::{Agent, AgentError};

/// The signed-in user, from `Authorization: Bearer <access token>` (or the portal's access
/// cookie, see `cookies`), the session the token belongs to (live access opened with it ends
/// with it), and the address the request came from (for the activity log).
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User, pub String, pub std::net::IpAddr);

impl CurrentUser {
    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
}

impl FromRequestParts<Arc<ControlPlane>> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        control: &Arc<ControlPlane>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let token = match (bearer, cookies::ACCESS.read(&parts.headers)) {
            (Some(token), _) => token,
            // The portal's cookie counts only with the header no other site's page can send.
            (None, Some(token)) if cookies::from_portal(&parts.headers) => token,
            (None, Some(_)) => {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "a request signed in by the portal's cookie must say X-ZLH-Session: cookie",
                ));
            }
            (None, None) => {
                return Err(ApiError::new(
                    ErrorCode::Unauthorized,
                    "sign in first: send Authorization: Bearer <access token>",
                ));
            }
        };
        let address = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip());
        if token.starts_with(API_KEY_PREFIX) {
            return key_holder(parts, control, token, address).await;
        }
        let claims = control.signer.verify(token, TokenKind::Access, now_secs()).map_err(|e| match e {
            TokenError::Expired => {
                ApiError::new(ErrorCode::TokenExpired, "the access token has expired; refresh it")
            }
            TokenError::Invalid => {
                ApiError::new(ErrorCode::TokenInvalid, "the access token is not valid; sign in again")
            }
        })?;
        let ended = || ApiError::new(ErrorCode::TokenInvalid, "this session has ended; sign in again");
        let session = claims.sid.as_deref().ok_or_else(ended)?;
        let user = control.store.session_user(session).await?.ok_or_else(ended)?;
        if user.id.to_string() != claims.sub {
            return Err(ended());
        }
        live(&user)?;
        two_factor_gate(control, &user, parts.uri.path()).await?;
        Ok(CurrentUser(user, session.to_owned(), address))
    }
}

/// How every personal API key starts (access tokens never do).
pub const API_KEY_PREFIX: &str = "zlh_";

/// The holder of a personal API key. A key reads (`read`) or acts (`write`) for its owner, but
/// never manages the account (password, keys) nor opens a console or an IDE: those need the
/// person, signed in.
async fn key_holder(
    parts: &Parts,
    control: &ControlPlane,
    key: &str,
    address: std::net::IpAddr,
) -> Result<CurrentUser, ApiError> {
    let refused = || ApiError::new(ErrorCode::TokenInvalid, "this API key is not valid, or was revoked");
    let now = zlh_proto::time::now_ms();
    let (user, key_id, scope) =
        control.store.api_key_user(&crate::auth::token_hash(key), now).await?.ok_or_else(refused)?;
    live(&user)?;
    two_factor_gate(control, &user, parts.uri.path()).await?;
    let path = parts.uri.path();
    let personal = path.starts_with("/api/auth/")
        || path.starts_with("/api/account/api-keys")
        || path.starts_with("/api/account/totp")
        || path.ends_with("/console/ticket")
        || path.ends_with("/ide-token");
    if personal {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "sign in with your password for this: API keys do not manage the account, open consoles or IDEs",
        ));
    }
    let reads = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    if scope == zlh_proto::api::ApiKeyScope::Read && !reads {
        return Err(ApiError::new(ErrorCode::Forbidden, "this API key may only read"));
    }
    Ok(CurrentUser(user, format!("key:{key_id}"), address))
}

/// The setting naming whose accounts must use two-factor sign-in.
pub const REQUIRE_TWO_FACTOR: &str = "require_two_factor";

/// Whose accounts must sign in with a second factor (admins set it; nobody's until they do).
pub async fn two_factor_policy(control: &ControlPlane) -> Result<TwoFactorPolicy, ApiError> {
    let stored = control.store.setting(REQUIRE_TWO_FACTOR).await?;
    Ok(match stored.as_deref() {
        Some("admins") => TwoFactorPolicy::Admins,
        Some("everyone") => TwoFactorPolicy::Everyone,
        _ => TwoFactorPolicy::None,
    })
}

/// While the host requires a second factor of an account that has none, the account may only
/// set one up (and sign out, or see who it is): everything else is a 403 saying so.
async fn two_factor_gate(control: &ControlPlane, user: &User, path: &str) -> Result<(), ApiError> {
    if user.has_two_factor() || path.starts_with("/api/auth/") || path.starts_with("/api/account/totp") {
        return Ok(());
    }
    if two_factor_policy(control).await?.applies_to(user.role) {
        return Err(ApiError::new(
            ErrorCode::TwoFactorRequired,
            "this host requires two-factor sign-in: turn it on in your account first",
        ));
    }
    Ok(())
}

/// The `{id}` of a server route. Anything that is not a server id is a 404, like a server that
/// does not exist or is not yours.
#[derive(Debug, Clone, Copy)]
pub struct ServerId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ServerId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // A map, so that routes with more parameters than the id (`/backups/{backupId}`) work too.
        let axum::extract::Path(params) =
            axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(
                parts, state,
            )
            .await
            .map_err(|_| ApiError::not_found("server"))?;
        params
            .get("id")
            .and_then(|raw| raw.parse().ok())
            .map(ServerId)
            .ok_or_else(|| ApiError::not_found("server"))
    }
}

/// Whether a session still stands for a live account (not ended, not suspended): what every
/// live connection opened with it checks while it lasts.
pub async fn session_lives(control: &ControlPlane, session: &str, user_id: i64) -> bool {
    match control.store.session_user(session).await {
        Ok(Some(user)) => user.id == user_id && live(&user).is_ok(),
        Ok(None) => false,
        // A store that fails for a moment ends nobody's console.
        Err(_) => true,
    }
}

/// Whether a live connection that `user_id` opened in `session` may go on using `server_id`
/// as `need` says: the session always, the access itself after an `announced` change. A store
/// that fails for a moment ends nobody's connection.
pub async fn still_allowed(
    control: &ControlPlane,
    session: &str,
    user_id: i64,
    server_id: i64,
    need: Need,
    announced: bool,
) -> bool {
    if !session_lives(control, session, user_id).await {
        return false;
    }
    if !announced {
        return true;
    }
    let user = match control.store.user_by_id(user_id).await {
        Ok(Some(user)) => user,
        Ok(None) => return false,
        Err(_) => return true,
    };
    match server(control, &user, server_id, need).await {
        Ok(_) => true,
        Err(error) => error.code == ErrorCode::Internal,
    }
}

/// Refuses a suspended account.
fn live(user: &User) -> Result<(), ApiError> {
    match user.suspended_at_ms {
        Some(_) => {
            Err(ApiError::new(ErrorCode::AccountSuspended, "this account is suspended; contact the operator"))
        }
        None => Ok(()),
    }
}

/// What a route needs of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// To see it: its state, usage, crashes and activity.
    See,
    /// To do this.
    To(Permission),
}

/// A server `user` may use as `need` says (see the module's notes).
pub async fn server(
    control: &ControlPlane,
    user: &User,
    server_id: i64,
    need: Need,
) -> Result<Server, ApiError> {
    let server = control.store.server(server_id).await?.ok_or_else(|| ApiError::not_found("server"))?;
    let Some(granted) = permissions(control, user, &server).await? else {
        return Err(ApiError::not_found("server"));
    };
    match need {
        Need::To(permission) if !granted.contains(&permission) => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this server's owner has not given you the {} permission", permission.as_str()),
        )),
        _ => Ok(server),
    }
}

/// What `user` may do on `server`: everything if it is theirs (or they are an admin), what its
/// owner granted if they were invited (perhaps nothing but seeing it), `None` if neither.
pub async fn permissions(
    control: &ControlPlane,
    user: &User,
    server: &Server,
) -> Result<Option<Vec<Permission>>, ApiError> {
    if server.owner_id == user.id || user.role == Role::Admin {
        return Ok(Some(Permission::all()));
    }
    // An invitation is to an address: it holds once the account proved it owns the address.
    if user.email_verified_at_ms.is_none() {
        return Ok(None);
    }
    Ok(control.store.member_permissions(server.id, &user.email).await?)
}

/// Tells live connections that someone's access changed (an invitation ended or was narrowed,
/// an account suspended or removed), so that they ask [`server`] again at once.
///
/// Other replicas learn of a change through the store's `access` generation, which each one
/// follows at its beat ([`Revocations::follow`]).
#[derive(Debug)]
pub struct Revocations {
    local: tokio::sync::watch::Sender<u64>,
    /// The store's `access` generation as last followed.
    followed: std::sync::atomic::AtomicI64,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            local: tokio::sync::watch::channel(0).0,
            followed: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

impl Revocations {
    /// Access changed (here, or on another replica).
    pub fn notify(&self) {
        self.local.send_modify(|generation| *generation += 1);
    }

    /// The store's `access` generation is `generation`: wakes live connections if it moved.
    pub fn follow(&self, generation: i64) {
        if self.followed.swap(generation, std::sync::atomic::Ordering::Relaxed) != generation {
            self.notify();
        }
    }

    /// Waits for the next change (or [`SESSION_CHECK`], whichever comes first: sessions end
    /// without telling), for a live connection's loop.
    pub fn watch(&self) -> RevocationWatch {
        RevocationWatch(self.local.subscribe())
    }
}

/// How often a live connection checks its session even when nothing was announced.
pub const SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// One live connection's view of [`Revocations`].
#[derive(Debug)]
pub struct RevocationWatch(tokio::sync::watch::Receiver<u64>);

impl RevocationWatch {
    /// Returns when access may have changed: `true` when a change was announced, `false` when
    /// [`SESSION_CHECK`] passed (only the session needs a look then).
    pub async fn changed(&mut self) -> bool {
        tokio::time::timeout(SESSION_CHECK, self.0.changed()).await.is_ok()
    }
}

/// A dev server `user` may use as `need` says; any other id (a game server included) is a 404.
pub async fn dev_server(
    control: &ControlPlane,
    user: &User,
    server_id: i64,
    need: Need,
) -> Result<Server, ApiError> {
    let server = server(control, user, server_id, need).await?;
    if server.kind != ServerKind::Dev {
        return Err(ApiError::not_found("server"));
    }
    Ok(server)
}

/// The code-server address of a dev server, if the user with this id (from an IDE cookie,
/// checked again on every request) may still use it.
pub async fn ide_upstream(control: &ControlPlane, user_id: i64, server_id: i64) -> Result<String, ApiError> {
    let missing = || ApiError::not_found("dev server");
    let user = control.store.user_by_id(user_id).await?.ok_or_else(missing)?;
    live(&user)?;
    let server =
        dev_server(control, &user, server_id, Need::To(Permission::Ide)).await.map_err(|_| missing())?;
    if server.ide_upstream.is_empty() {
        return Err(missing());
    }
    Ok(server.ide_upstream.expose().to_owned())
}

/// The agent of a server that finished provisioning.
pub fn agent(control: &ControlPlane, server: &Server) -> Result<Arc<dyn Agent>, ApiError> {
    if server.lifecycle != Lifecycle::Ready {
        return Err(ApiError::new(
            ErrorCode::PowerActionInProgress,
            "the server is being created or deleted",
        ));
    }
    Ok(control.registry.get(server.id).ok_or(AgentError::Unreachable)?)
}
