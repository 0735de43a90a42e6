//! `/api/account/totp*`: two-factor sign-in of the signed-in account (turn on with a QR code and
//! a first code, recovery codes, turn off), and what sign-in asks of an account that has it.
//! Turning it on or off and new recovery codes take the password again: a stolen session alone
//! must not lock the owner out or remove their second factor.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{PasswordConfirmation, RecoveryCodes, TotpCode, TotpEnrolment, TwoFactorStatus};
use zlh_proto::time::{now_ms, now_secs};

use super::auth::confirm_password;
use crate::ControlPlane;
use crate::access::{CurrentUser, two_factor_policy};
use crate::activity::Event;
use crate::auth::{token_hash, totp};
use crate::db::User;

/// Checks a second factor at sign-in: a code of the authenticator app (each time step once), or
/// a recovery code (each once). The activity it is recorded as, or `None` when it is wrong.
pub(super) async fn check_code(
    control: &ControlPlane,
    user: &User,
    code: &str,
) -> Result<Option<&'static str>, ApiError> {
    let Some(secret) = user.totp_secret.as_deref() else { return Ok(None) };
    if totp::is_one_time_code(code) {
        let Some(step) = totp::matching_step(secret, code, now_secs()) else { return Ok(None) };
        let fresh = control.store.use_totp_step(user.id, step as i64).await?;
        return Ok(fresh.then_some("sign_in"));
    }
    let hash = token_hash(&totp::normalized_recovery_code(code));
    let used = control.store.use_recovery_code(user.id, &hash, now_ms()).await?;
    Ok(used.then_some("recovery_code_used"))
}

/// New recovery codes: the codes to show once, and their hashes to store.
fn new_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    let codes = totp::recovery_codes();
    let hashes = codes.iter().map(|code| token_hash(code)).collect();
    (codes, hashes)
}

#[utoipa::path(get, path = "/api/account/totp", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TwoFactorStatus)))]
pub(super) async fn status(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<TwoFactorStatus>, ApiError> {
    Ok(Json(TwoFactorStatus {
        enabled: user.0.has_two_factor(),
        recovery_codes_left: control.store.recovery_codes_left(user.0.id).await?,
        required: two_factor_policy(&control).await?.applies_to(user.0.role),
    }))
}

#[utoipa::path(post, path = "/api/account/totp", tag = "auth", security(("bearer" = [])), request_body = PasswordConfirmation,
    responses((status = 200, body = TotpEnrolment, description = "A new secret for the authenticator app; on once a code is confirmed"),
        (status = 401, body = zlh_proto::ErrorBody), (status = 409, body = zlh_proto::ErrorBody)))]
pub(super) async fn begin(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    confirm_password(&control, &user, &request.password).await?;
    let secret = totp::new_secret();
    if !control.store.begin_totp(user.0.id, &secret).await? {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "two-factor sign-in is on already"));
    }
    let enrolment = totp::enrolment(&secret, &user.0.email);
    Ok(Json(TotpEnrolment { secret: enrolment.secret, otpauth_url: enrolment.url, qr_svg: enrolment.qr_svg }))
}

#[utoipa::path(post, path = "/api/account/totp/confirm", tag = "auth", security(("bearer" = [])), request_body = TotpCode,
    responses((status = 200, body = RecoveryCodes, description = "On: sign-in asks for a code from now on. The recovery codes are shown this once"),
        (status = 401, body = zlh_proto::ErrorBody), (status = 409, body = zlh_proto::ErrorBody)))]
pub(super) async fn confirm(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<TotpCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    if user.0.has_two_factor() {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "two-factor sign-in is on already"));
    }
    let Some(secret) = user.0.totp_secret.as_deref() else {
        return Err(ApiError::new(ErrorCode::BadRequest, "set up two-factor sign-in first"));
    };
    let step = totp::matching_step(secret, &request.code, now_secs()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::TotpInvalid,
            "that code is not right; check the app's clock and try the next one",
        )
    })?;
    let (codes, hashes) = new_recovery_codes();
    if !control.store.enable_totp(user.0.id, step as i64, &hashes, now_ms()).await? {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "two-factor sign-in is on already"));
    }
    tracing::info!(user_id = user.0.id, "two-factor sign-in turned on");
    Event::by(&user, "two_factor_enabled").record(&control).await;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/account/totp/recovery-codes", tag = "auth", security(("bearer" = [])), request_body = PasswordConfirmation,
    responses((status = 200, body = RecoveryCodes, description = "New codes, shown this once; the old ones no longer work"), (status = 401, body = zlh_proto::ErrorBody)))]
pub(super) async fn recovery_codes(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    confirm_password(&control, &user, &request.password).await?;
    if !user.0.has_two_factor() {
        return Err(ApiError::new(ErrorCode::BadRequest, "two-factor sign-in is off"));
    }
    let (codes, hashes) = new_recovery_codes();
    control.store.replace_recovery_codes(user.0.id, &hashes).await?;
    Event::by(&user, "recovery_codes_replaced").record(&control).await;
    Ok(Json(RecoveryCodes { recovery_codes: codes }))
}

#[utoipa::path(post, path = "/api/account/totp/disable", tag = "auth", security(("bearer" = [])), request_body = PasswordConfirmation,
    responses((status = 204, description = "Off: sign-in asks for the password only"), (status = 401, body = zlh_proto::ErrorBody), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn disable(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(request): ApiJson<PasswordConfirmation>,
) -> Result<StatusCode, ApiError> {
    confirm_password(&control, &user, &request.password).await?;
    if two_factor_policy(&control).await?.applies_to(user.0.role) {
        return Err(ApiError::new(
            ErrorCode::TwoFactorRequired,
            "this host requires two-factor sign-in of your account; it cannot be turned off",
        ));
    }
    control.store.disable_totp(user.0.id).await?;
    tracing::info!(user_id = user.0.id, "two-factor sign-in turned off");
    Event::by(&user, "two_factor_disabled").record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}
