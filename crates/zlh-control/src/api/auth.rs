//! `/api/auth/*`: registration and email verification, sign-in, refresh, sign-out, password change
//! and reset; `/api/account/*`: the account's activity and API keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{
    ActivityEntry, ApiKeyRequest, ApiKeyView, CookieSession, Credentials, EmailVerification, NewApiKey,
    PasswordChange, RefreshRequest, RegistrationStarted, ResetConfirm, ResetRequest, Role, Session, UserView,
};
use zlh_proto::time::{now_ms, now_secs};

use super::user_view;
use crate::ControlPlane;
use crate::access::CurrentUser;
use crate::access::cookies;
use crate::activity::Event;
use crate::auth::mailer::Message;
use crate::auth::rate_limit::Rule;
use crate::auth::tokens::Claims;
use crate::auth::{passwords, random_token, token_hash};
use crate::db::{RefreshOutcome, StoreError, User};

pub(super) fn normalize_email(email: &str) -> Result<String, ApiError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if valid {
        Ok(email)
    } else {
        Err(ApiError::new(ErrorCode::InvalidEmail, "that is not an email address"))
    }
}

/// Refuses a weak password; `context` is what it must not be made of (the email address).
fn check_password(password: &str, context: &[&str]) -> Result<(), ApiError> {
    match passwords::weakness(password, context) {
        Some(reason) => Err(ApiError::new(ErrorCode::WeakPassword, reason)),
        None => Ok(()),
    }
}

/// Starts a session: a refresh token stored hashed, and an access token naming the session.
pub(crate) async fn issue_session(control: &ControlPlane, user: &User) -> Result<Session, ApiError> {
    let session_id = random_token(16);
    let refresh_token = random_token(32);
    let now = now_ms();
    let refresh_expires = now + control.config.auth.refresh_token_ttl.as_millis() as i64;
    control
        .store
        .create_session(&session_id, user.id, &token_hash(&refresh_token), refresh_expires, now)
        .await?;
    Ok(session(control, user, session_id, refresh_token))
}

fn session(control: &ControlPlane, user: &User, session_id: String, refresh_token: String) -> Session {
    let ttl = control.config.auth.access_token_ttl.as_secs().max(1);
    let iat = now_secs();
    let claims = Claims {
        sub: user.id.to_string(),
        kind: crate::auth::tokens::TokenKind::Access,
        iat,
        exp: iat + ttl,
        sid: Some(session_id),
        vmid: None,
        jti: None,
    };
    Session {
        access_token: control.signer.sign(&claims),
        expires_in: ttl,
        refresh_token,
        user: user_view(user),
    }
}

/// A new session as the client asked for it: tokens in the answer (scripts, CLIs), or
/// `HttpOnly` cookies and only the user in the answer (the portal, `X-ZLH-Session: cookie`).
fn answer(control: &ControlPlane, headers: &HeaderMap, session: Session) -> Response {
    if !cookies::from_portal(headers) {
        return Json(session).into_response();
    }
    let auth = &control.config.auth;
    let secure = secure_cookies(control);
    let mut response =
        Json(CookieSession { expires_in: session.expires_in, user: session.user }).into_response();
    let set = [
        cookies::ACCESS.set(&session.access_token, auth.access_token_ttl, secure),
        cookies::REFRESH.set(&session.refresh_token, auth.refresh_token_ttl, secure),
    ];
    for value in set.into_iter().flatten() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Whether the portal's cookies are `Secure`: when people reach it over https.
fn secure_cookies(control: &ControlPlane) -> bool {
    control.config.public_url().starts_with("https://")
}

/// The refresh token of a refresh or sign-out: from the body, or the portal's cookie.
fn presented_refresh(headers: &HeaderMap, request: RefreshRequest) -> Result<String, ApiError> {
    let from_cookie = || cookies::from_portal(headers).then(|| cookies::REFRESH.read(headers)).flatten();
    request.refresh_token.or_else(|| from_cookie().map(str::to_owned)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::TokenInvalid,
            "send the refresh token (refreshToken); sign in again if it is lost",
        )
    })
}

#[utoipa::path(get, path = "/api/auth/registration", tag = "auth",
    responses((status = 200, body = zlh_proto::api::Registration, description = "Whether this host accepts new accounts")))]
pub(super) async fn registration(
    State(control): State<Arc<ControlPlane>>,
) -> Json<zlh_proto::api::Registration> {
    Json(zlh_proto::api::Registration { open: control.config.auth.allow_registration })
}

#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Credentials,
    responses((status = 202, body = RegistrationStarted, description = "A message went to the address: a link to confirm it, or, if it has an account, a note saying so"),
        (status = 403, body = zlh_proto::ErrorBody), (status = 429, body = zlh_proto::ErrorBody)))]
pub(super) async fn register(
    State(control): State<Arc<ControlPlane>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<(StatusCode, Json<RegistrationStarted>), ApiError> {
    if !control.config.auth.allow_registration {
        return Err(ApiError::new(
            ErrorCode::RegistrationDisabled,
            "this host does not accept new accounts; ask the operator",
        ));
    }
    // One address creates a few accounts freely; more, ever more slowly.
    let key = format!("register:{}", client.ip());
    let rule =
        Rule { free: control.config.auth.registrations_per_address, max_delay: Duration::from_secs(3600) };
    let now = now_ms();
    if let Err(wait) = control.throttle.check(&key, rule, now).await {
        return Err(throttled("new accounts from this address", wait));
    }
    let email = normalize_email(&credentials.email)?;
    check_password(&credentials.password, &[&email])?;
    // Hashed either way, so the answer takes as long whether or not the address has an account.
    let hash = passwords::hash(&credentials.password).await;
    control.throttle.record(&key, now).await;
    match control.store.create_user(&email, &hash, Role::User, false, now_ms()).await {
        Ok(user) => {
            tracing::info!(user_id = user.id, "account created; its address is not verified yet");
            send_verification(&control, &user).await?;
        }
        // Whoever registered first does not learn that the address has an account, and the
        // owner is told (their password is unchanged: a reset is the way back in).
        Err(StoreError::Conflict) => {
            let message = Message {
                to: email.clone(),
                subject: "You already have a ZeroLagHub account".into(),
                body: format!(
                    "Someone tried to create an account with this address, which already has one. If it was \
                     you, sign in at\n\n{url}/\n\nor, if you forgot the password, reset it at\n\n{url}/#/forgot\n\n\
                     If it was not you, ignore this message: nothing changed.",
                    url = control.config.public_url()
                ),
            };
            deliver(&control, &message, "already-registered note");
        }
        Err(e) => return Err(e.into()),
    }
    Ok((StatusCode::ACCEPTED, Json(RegistrationStarted { email })))
}

/// How long a link confirming an address works.
const VERIFICATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Sends a user a link that proves their address (and signs them in); it replaces earlier ones.
async fn send_verification(control: &ControlPlane, user: &User) -> Result<(), ApiError> {
    let token = random_token(32);
    let expires = now_ms() + VERIFICATION_TTL.as_millis() as i64;
    control.store.create_email_verification(&token_hash(&token), user.id, expires).await?;
    let message = Message {
        to: user.email.clone(),
        subject: "Confirm your ZeroLagHub account".into(),
        body: format!(
            "Open\n\n{}/verify-email?token={token}\n\nwithin 24 hours to confirm this address and sign in. \
             If you did not create an account, ignore this message.",
            control.config.public_url()
        ),
    };
    deliver(control, &message, "verification link");
    Ok(())
}

/// Hands a message to the mailer; a failure is for the operator's log, never the requester.
fn deliver(control: &ControlPlane, message: &Message, what: &str) {
    match control.mailer.send(message) {
        Ok(()) => tracing::info!("{what} sent"),
        Err(e) => tracing::error!(error = %e, "{what} could not be sent"),
    }
}

#[utoipa::path(post, path = "/api/auth/verify-email", tag = "auth", request_body = EmailVerification,
    responses((status = 200, body = Session, description = "The address is confirmed and the account signed in"), (status = 401, body = zlh_proto::ErrorBody)))]
pub(super) async fn verify_email(
    State(control): State<Arc<ControlPlane>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<EmailVerification>,
) -> Result<Response, ApiError> {
    let user = control.store.use_email_verification(&token_hash(&request.token), now_ms()).await?;
    let user = user.ok_or_else(|| {
        ApiError::new(
            ErrorCode::TokenInvalid,
            "this link is not valid, was already used, or has expired; sign in to get a new one",
        )
    })?;
    if user.suspended_at_ms.is_some() {
        return Err(ApiError::new(
            ErrorCode::AccountSuspended,
            "this account is suspended; contact the operator",
        ));
    }
    tracing::info!(user_id = user.id, "address verified");
    Event::of_account(user.id, client.ip(), "email_verified").record(&control).await;
    Ok(answer(&control, &headers, issue_session(&control, &user).await?))
}

/// A wait in whole seconds, rounded up: a client that waits what it is told is let through.
fn whole_seconds(wait: Duration) -> u128 {
    wait.as_millis().div_ceil(1000).max(1)
}

/// The answer while a throttle holds: `too many …; try again in N s`.
fn throttled(too_many: &str, wait: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        format!("too many {too_many}; try again in {} s", whole_seconds(wait)),
    )
}

fn rate_limited(retry_after: Duration) -> Response {
    let mut response = throttled("failed sign-ins", retry_after).into_response();
    if let Ok(value) = HeaderValue::from_str(&whole_seconds(retry_after).to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = Credentials,
    responses((status = 200, body = Session, description = "The tokens; a client sending `X-ZLH-Session: cookie` gets them as HttpOnly cookies and a `CookieSession` instead"),
        (status = 401, body = zlh_proto::ErrorBody), (status = 429, body = zlh_proto::ErrorBody)))]
pub(super) async fn login(
    State(control): State<Arc<ControlPlane>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Response {
    let email = credentials.email.trim().to_lowercase();
    let free = control.config.auth.max_failed_logins;
    // The account from this address is slowed hardest; the address (many accounts) and the
    // account (many addresses) more gently: the owner, signing in from elsewhere, is never
    // locked out by someone else's guesses.
    let keys = [
        (format!("pair:{email}|{}", client.ip()), Rule { free, max_delay: Duration::from_secs(60) }),
        (format!("client:{}", client.ip()), Rule { free: free * 10, max_delay: Duration::from_secs(60) }),
        (format!("email:{email}"), Rule { free: free * 10, max_delay: Duration::from_secs(5) }),
    ];
    let now = now_ms();
    for (key, rule) in &keys {
        if let Err(retry_after) = control.throttle.check(key, *rule, now).await {
            tracing::warn!(client = %client.ip(), "sign-in slowed: failed guesses");
            return rate_limited(retry_after);
        }
    }
    let user = match control.store.user_by_email(&email).await {
        Ok(user) => user,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // An unknown email is checked against a decoy hash, so a sign-in takes as long whether or
    // not the account exists.
    let hash = user.as_ref().map_or(control.decoy_hash.as_str(), |u| u.password_hash.as_str());
    let matches = passwords::verify(&credentials.password, hash).await;
    let known = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|_| matches) else {
        for (key, _) in &keys {
            control.throttle.record(key, now).await;
        }
        tracing::info!(client = %client.ip(), "sign-in failed");
        if let Some(user_id) = known {
            Event::of_account(user_id, client.ip(), "sign_in_failed").record(&control).await;
        }
        return ApiError::new(ErrorCode::InvalidCredentials, "wrong email or password").into_response();
    };
    if user.suspended_at_ms.is_some() {
        return ApiError::new(ErrorCode::AccountSuspended, "this account is suspended; contact the operator")
            .into_response();
    }
    if user.email_verified_at_ms.is_none() {
        // The password is right, so this is the person who registered: a fresh link, at most
        // every few minutes.
        let key = format!("verify:{}", user.id);
        let rule = Rule { free: 1, max_delay: Duration::from_secs(300) };
        if control.throttle.check(&key, rule, now).await.is_ok() {
            control.throttle.record(&key, now).await;
            if let Err(e) = send_verification(&control, &user).await {
                return e.into_response();
            }
        }
        return ApiError::new(
            ErrorCode::EmailUnverified,
            format!("confirm your address first: open the link we sent to {}", user.email),
        )
        .into_response();
    }
    if user.has_two_factor() {
        let Some(code) = credentials.totp_code.as_deref().filter(|code| !code.trim().is_empty()) else {
            return ApiError::new(ErrorCode::TotpRequired, "enter the code from your authenticator app")
                .into_response();
        };
        match super::two_factor::check_code(&control, &user, code).await {
            Ok(Some(used)) => Event::of_account(user.id, client.ip(), used).record(&control).await,
            Ok(None) => {
                for (key, _) in &keys {
                    control.throttle.record(key, now).await;
                }
                Event::of_account(user.id, client.ip(), "sign_in_failed")
                    .detail("wrong two-factor code")
                    .record(&control)
                    .await;
                return ApiError::new(
                    ErrorCode::TotpInvalid,
                    "that code is wrong or was used already; wait for the next one, or use a recovery code",
                )
                .into_response();
            }
            Err(e) => return e.into_response(),
        }
    }
    // Only a whole sign-in (password and second factor) forgives this pair's failures.
    control.throttle.clear(&keys[0].0).await;
    tracing::info!(user_id = user.id, "signed in");
    Event::of_account(user.id, client.ip(), "sign_in").record(&control).await;
    match issue_session(&control, &user).await {
        Ok(session) => answer(&control, &headers, session),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = Session), (status = 401, body = zlh_proto::ErrorBody)))]
pub(super) async fn refresh(
    State(control): State<Arc<ControlPlane>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let presented = presented_refresh(&headers, request)?;
    let next = random_token(32);
    let now = now_ms();
    let expires = now + control.config.auth.refresh_token_ttl.as_millis() as i64;
    let outcome =
        control.store.rotate_refresh(&token_hash(&presented), &token_hash(&next), expires, now).await?;
    match outcome {
        RefreshOutcome::Rotated { session_id, user_id } => {
            let user = control.store.user_by_id(user_id).await?;
            let user = user.ok_or_else(|| {
                ApiError::new(ErrorCode::TokenInvalid, "this session has ended; sign in again")
            })?;
            Ok(answer(&control, &headers, session(&control, &user, session_id, next)))
        }
        RefreshOutcome::Reused => {
            tracing::warn!("a used refresh token was presented again; its session was ended");
            Err(ApiError::new(
                ErrorCode::TokenReused,
                "this refresh token was already used, so the sign-in it belongs to was ended everywhere; sign in again",
            ))
        }
        RefreshOutcome::Invalid => Err(ApiError::new(
            ErrorCode::TokenInvalid,
            "the refresh token is not valid or has expired; sign in again",
        )),
    }
}

#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest, responses((status = 204)))]
pub(super) async fn logout(
    State(control): State<Arc<ControlPlane>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let presented = presented_refresh(&headers, request)?;
    let session = control.store.session_of_refresh(&token_hash(&presented)).await?;
    if let Some(session) = session {
        let user = control.store.session_user(&session).await?;
        control.store.revoke_session(&session, now_ms()).await?;
        if let Some(user) = user {
            Event::of_account(user.id, client.ip(), "sign_out").record(&control).await;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if cookies::from_portal(&headers) {
        let secure = secure_cookies(&control);
        for value in [cookies::ACCESS.clear(secure), cookies::REFRESH.clear(secure)].into_iter().flatten() {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])), responses((status = 200, body = UserView)))]
pub(super) async fn me(user: CurrentUser) -> Json<UserView> {
    Json(user_view(&user.0))
}

/// How many entries an activity log answers with (the newest).
pub(super) const ACTIVITY_ENTRIES: u32 = 200;

#[utoipa::path(get, path = "/api/account/activity", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [ActivityEntry], description = "The newest 200 entries of your account and servers, newest first")))]
pub(super) async fn activity(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<ActivityEntry>>, ApiError> {
    Ok(Json(control.store.activity(Some(user.0.id), None, ACTIVITY_ENTRIES).await?))
}

#[utoipa::path(get, path = "/api/account/api-keys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = [ApiKeyView], description = "Your live keys, without the keys themselves")))]
pub(super) async fn api_keys(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    Ok(Json(control.store.api_keys(user.0.id).await?))
}

#[utoipa::path(post, path = "/api/account/api-keys", tag = "auth", security(("bearer" = [])), request_body = ApiKeyRequest,
    responses((status = 201, body = NewApiKey, description = "The key, shown this once"), (status = 400, body = zlh_proto::ErrorBody)))]
pub(super) async fn create_api_key(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<ApiKeyRequest>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    let name = super::display_name(&request.name)?;
    if control.store.api_keys(user.0.id).await?.len() >= MAX_API_KEYS {
        return Err(ApiError::new(ErrorCode::Forbidden, "you have 20 keys; revoke one first"));
    }
    let key = format!("{}{}", crate::access::API_KEY_PREFIX, random_token(24));
    let prefix: String = key.chars().take(8).collect();
    let request = ApiKeyRequest { name: name.to_owned(), scope: request.scope };
    let view =
        control.store.create_api_key(user.0.id, &request, &prefix, &token_hash(&key), now_ms()).await?;
    Event::by(&user, "api_key_created")
        .detail(format!("{} ({})", view.name, view.scope.as_str()))
        .record(&control)
        .await;
    Ok((StatusCode::CREATED, Json(NewApiKey { key, view })))
}

#[utoipa::path(delete, path = "/api/account/api-keys/{keyId}", tag = "auth", security(("bearer" = [])), params(("keyId" = i64, Path)),
    responses((status = 204, description = "Revoked: refused from now on"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn revoke_api_key(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    axum::extract::Path(key_id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let key_id: i64 = key_id.parse().map_err(|_| ApiError::not_found("API key"))?;
    if !control.store.revoke_api_key(user.0.id, key_id, now_ms()).await? {
        return Err(ApiError::not_found("API key"));
    }
    Event::by(&user, "api_key_revoked").detail(format!("key {key_id}")).record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Live keys an account may have.
const MAX_API_KEYS: usize = 20;

/// Checks the signed-in person's password again, under a throttle: a stolen session must not
/// become a way to guess it.
pub(super) async fn confirm_password(
    control: &ControlPlane,
    user: &CurrentUser,
    password: &str,
) -> Result<(), ApiError> {
    let key = format!("current-password:{}", user.0.id);
    let rule = Rule { free: control.config.auth.max_failed_logins, max_delay: Duration::from_secs(60) };
    let now = now_ms();
    if let Err(wait) = control.throttle.check(&key, rule, now).await {
        return Err(throttled("wrong passwords", wait));
    }
    if !passwords::verify(password, &user.0.password_hash).await {
        control.throttle.record(&key, now).await;
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "the current password is wrong"));
    }
    control.throttle.clear(&key).await;
    Ok(())
}

#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 200, body = Session, description = "Every other session ended; this is the new one")))]
pub(super) async fn change_password(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    headers: HeaderMap,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    confirm_password(&control, &user, &change.current_password).await?;
    check_password(&change.new_password, &[&user.0.email])?;
    if change.new_password == change.current_password {
        return Err(ApiError::new(ErrorCode::WeakPassword, "the new password is the current one"));
    }
    let hash = passwords::hash(&change.new_password).await;
    control.store.set_password(user.0.id, &hash, now_ms()).await?;
    tracing::info!(user_id = user.0.id, "password changed; every session ended");
    Event::by(&user, "password_changed").record(&control).await;
    // The new session shows the account as it is now (its password no longer a generated one).
    let changed = User { password_generated: false, ..user.0.clone() };
    Ok(answer(&control, &headers, issue_session(&control, &changed).await?))
}

#[utoipa::path(post, path = "/api/auth/password-reset/request", tag = "auth", request_body = ResetRequest,
    responses((status = 202, description = "Sent if the account exists (the answer is the same either way)")))]
pub(super) async fn request_reset(
    State(control): State<Arc<ControlPlane>>,
    ApiJson(request): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let email = normalize_email(&request.email)?;
    let key = format!("reset:{email}");
    let now = now_ms();
    let rule = Rule { free: control.config.auth.max_failed_logins, max_delay: Duration::from_secs(600) };
    if control.throttle.check(&key, rule, now).await.is_err() {
        return Ok(StatusCode::ACCEPTED);
    }
    control.throttle.record(&key, now).await;
    let Some(user) = control.store.user_by_email(&email).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    if user.suspended_at_ms.is_some() {
        return Ok(StatusCode::ACCEPTED);
    }
    let token = random_token(32);
    let expires = now_ms() + control.config.auth.reset_token_ttl.as_millis() as i64;
    control.store.create_password_reset(&token_hash(&token), user.id, expires).await?;
    let minutes = control.config.auth.reset_token_ttl.as_secs().div_ceil(60);
    let message = Message {
        to: user.email.clone(),
        subject: "Reset your ZeroLagHub password".into(),
        body: format!(
            "Someone asked to reset the password of this account. If it was you, open\n\n{}/reset-password?token={token}\n\n\
             within {minutes} minutes. If it was not you, ignore this message.",
            control.config.public_url()
        ),
    };
    deliver(&control, &message, "password reset link");
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204), (status = 401, body = zlh_proto::ErrorBody)))]
pub(super) async fn confirm_reset(
    State(control): State<Arc<ControlPlane>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    ApiJson(confirm): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    check_password(&confirm.new_password, &[])?;
    let user_id = control.store.use_password_reset(&token_hash(&confirm.token), now_ms()).await?;
    let user_id = user_id.ok_or_else(|| {
        ApiError::new(
            ErrorCode::TokenInvalid,
            "this reset link is not valid, was already used, or has expired; ask for a new one",
        )
    })?;
    let hash = passwords::hash(&confirm.new_password).await;
    control.store.set_password(user_id, &hash, now_ms()).await?;
    tracing::info!(user_id, "password reset; every session ended");
    Event::of_account(user_id, client.ip(), "password_reset").record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}
