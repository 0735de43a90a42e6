//! `/api/admin/*`: what only an operator's admins may do: see every user, suspend one, reset
//! their two-factor sign-in, and change host-wide settings.
//! (Every server is already visible to admins through `/api/servers`.)

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{ChangeRole, CreatedUser, HostSettings, NewUser, UserView};
use zlh_proto::time::now_ms;

use super::user_view;
use crate::ControlPlane;
use crate::access::{CurrentUser, REQUIRE_TWO_FACTOR, two_factor_policy};
use crate::activity::Event;

pub(super) fn admin_only(user: &CurrentUser) -> Result<(), ApiError> {
    if user.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, "only an administrator may do this"))
    }
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>, description = "Every user"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn users(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<UserView>>, ApiError> {
    admin_only(&user)?;
    let users = control.store.users().await?;
    Ok(Json(users.iter().map(user_view).collect()))
}

async fn set_suspended(
    control: &ControlPlane,
    admin: &CurrentUser,
    id: &str,
    suspend: bool,
) -> Result<Json<UserView>, ApiError> {
    admin_only(admin)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("user"))?;
    if id == admin.0.id {
        return Err(ApiError::new(ErrorCode::BadRequest, "you cannot suspend yourself"));
    }
    control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    control.store.set_suspended(id, suspend.then(now_ms)).await?;
    control.access_changed().await;
    tracing::info!(user_id = id, admin_id = admin.0.id, suspend, "account suspension changed");
    let action = if suspend { "account_suspended" } else { "account_unsuspended" };
    crate::activity::Event::by(admin, action).on_account(id).record(control).await;
    let user = control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(post, path = "/api/admin/users/{userId}/suspend", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    responses((status = 200, body = UserView, description = "Suspended: every request of theirs is refused at once"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn suspend(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    set_suspended(&control, &user, &id, true).await
}

#[utoipa::path(post, path = "/api/admin/users/{userId}/unsuspend", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    responses((status = 200, body = UserView, description = "Active again"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn unsuspend(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    set_suspended(&control, &user, &id, false).await
}

#[utoipa::path(post, path = "/api/admin/users", tag = "admin", security(("bearer" = [])), request_body = NewUser,
    responses((status = 201, body = CreatedUser, description = "Made, with a generated password shown once"),
        (status = 400, body = zlh_proto::ErrorBody), (status = 409, body = zlh_proto::ErrorBody, description = "already_exists")))]
pub(super) async fn create_user(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    admin_only(&admin)?;
    let email = super::auth::normalize_email(&request.email)?;
    let password = crate::auth::random_token(15);
    let hash = crate::auth::passwords::hash(&password).await;
    let user =
        control.store.create_user(&email, &hash, request.role, true, now_ms()).await.map_err(
            |e| match e {
                crate::db::StoreError::Conflict => {
                    ApiError::new(ErrorCode::AlreadyExists, "an account has that address")
                }
                e => e.into(),
            },
        )?;
    control.store.mark_password_generated(user.id).await?;
    Event::by(&admin, "account_created").on_account(user.id).record(&control).await;
    let user = control.store.user_by_id(user.id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok((StatusCode::CREATED, Json(CreatedUser { user: user_view(&user), password })))
}

/// The user `id` names, when it is not the admin asking (who cannot demote or delete
/// themselves: a host always keeps an admin).
async fn someone_else(
    control: &ControlPlane,
    admin: &CurrentUser,
    id: &str,
) -> Result<crate::db::User, ApiError> {
    admin_only(admin)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("user"))?;
    if id == admin.0.id {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "you cannot change or delete your own account here",
        ));
    }
    control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))
}

#[utoipa::path(patch, path = "/api/admin/users/{userId}", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    request_body = ChangeRole, responses((status = 200, body = UserView), (status = 400, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn change_role(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ChangeRole>,
) -> Result<Json<UserView>, ApiError> {
    let user = someone_else(&control, &admin, &id).await?;
    control.store.set_role(user.id, request.role).await?;
    control.access_changed().await;
    Event::by(&admin, "role_changed")
        .on_account(user.id)
        .detail(request.role.as_str().to_owned())
        .record(&control)
        .await;
    let user = control.store.user_by_id(user.id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(delete, path = "/api/admin/users/{userId}", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    responses((status = 204, description = "Deleted: every session of theirs ended"),
        (status = 409, body = zlh_proto::ErrorBody, description = "in_use: they own servers; delete those first")))]
pub(super) async fn delete_user(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = someone_else(&control, &admin, &id).await?;
    let servers = control.store.servers(Some(user.id)).await?;
    if !servers.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InUse,
            format!("{} owns {} servers; delete them first", user.email, servers.len()),
        ));
    }
    control.store.delete_user(user.id).await?;
    control.access_changed().await;
    tracing::info!(user_id = user.id, admin_id = admin.0.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/admin/users/{userId}/activity", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    responses((status = 200, body = [zlh_proto::api::ActivityEntry]), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn activity(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<zlh_proto::api::ActivityEntry>>, ApiError> {
    admin_only(&user)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("user"))?;
    control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(control.store.activity(Some(id), None, super::auth::ACTIVITY_ENTRIES).await?))
}

#[utoipa::path(post, path = "/api/admin/users/{userId}/reset-two-factor", tag = "admin", security(("bearer" = [])), params(("userId" = i64, Path)),
    responses((status = 200, body = UserView, description = "Two-factor sign-in off (a lost phone and lost recovery codes); they set it up again"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn reset_two_factor(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    admin_only(&admin)?;
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("user"))?;
    control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    control.store.disable_totp(id).await?;
    tracing::info!(user_id = id, admin_id = admin.0.id, "two-factor sign-in reset by an admin");
    Event::by(&admin, "two_factor_disabled").on_account(id).record(&control).await;
    let user = control.store.user_by_id(id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user_view(&user)))
}

#[utoipa::path(get, path = "/api/admin/settings", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = HostSettings), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn settings(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
) -> Result<Json<HostSettings>, ApiError> {
    admin_only(&admin)?;
    Ok(Json(HostSettings { require_two_factor: two_factor_policy(&control).await? }))
}

#[utoipa::path(put, path = "/api/admin/settings", tag = "admin", security(("bearer" = [])), request_body = HostSettings,
    responses((status = 200, body = HostSettings, description = "In force at once"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn change_settings(
    State(control): State<Arc<ControlPlane>>,
    admin: CurrentUser,
    ApiJson(settings): ApiJson<HostSettings>,
) -> Result<Json<HostSettings>, ApiError> {
    admin_only(&admin)?;
    let policy = settings.require_two_factor;
    if policy.applies_to(admin.0.role) && !admin.0.has_two_factor() {
        return Err(ApiError::new(
            ErrorCode::TwoFactorRequired,
            "turn on two-factor sign-in for your own account first: this would lock you out",
        ));
    }
    control.store.set_setting(REQUIRE_TWO_FACTOR, policy.as_str()).await?;
    tracing::info!(admin_id = admin.0.id, policy = policy.as_str(), "two-factor requirement changed");
    Event::by(&admin, "settings_changed")
        .detail(format!("two-factor required of: {}", policy.as_str()))
        .record(&control)
        .await;
    Ok(Json(settings))
}
