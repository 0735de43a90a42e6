//! `/api/servers/{id}/members`: the accounts a server's owner invited, and what each may do.
//!
//! Only the owner (or an admin) manages them; an invited account may leave. Narrowing or ending
//! an invitation takes effect at once, open consoles and IDE connections included (see
//! `access::Revocations`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{InviteMember, MemberPermissions, MemberView, Permission};
use zlh_proto::time::now_ms;

use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::activity::Event;

const MANAGE: Need = Need::To(Permission::Manage);

#[utoipa::path(get, path = "/api/servers/{id}/members", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = [MemberView]), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    access::server(&control, &user.0, id, MANAGE).await?;
    Ok(Json(control.store.members(id).await?))
}

#[utoipa::path(post, path = "/api/servers/{id}/members", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = InviteMember,
    responses((status = 201, body = MemberView, description = "Invited: the server shows in their list"),
        (status = 400, body = zlh_proto::ErrorBody, description = "a permission that cannot be granted"),
        (status = 404, body = zlh_proto::ErrorBody, description = "no such server, or no account uses that email"),
        (status = 409, body = zlh_proto::ErrorBody, description = "already_exists: invited already, or the owner")))]
pub(super) async fn invite(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    body: axum::extract::Request,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    // Whose server it is comes first, before the body is read.
    let server = access::server(&control, &user.0, id, MANAGE).await?;
    let ApiJson(request) = ApiJson::<InviteMember>::from_request(body, &control).await?;
    let permissions = grantable(&request.permissions)?;
    let invited = control
        .store
        .user_by_email(request.email.trim())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no account uses that email address"))?;
    if invited.id == server.owner_id {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "that account owns this server"));
    }
    if control.store.member_permissions(id, invited.id).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "that account is invited already: change what it may do instead",
        ));
    }
    control.store.put_member(id, invited.id, &permissions, now_ms()).await?;
    Event::by(&user, "member_added")
        .on(&server)
        .detail(describe(&invited.email, &permissions))
        .record(&control)
        .await;
    Ok((StatusCode::CREATED, Json(member(&control, id, invited.id).await?)))
}

#[utoipa::path(put, path = "/api/servers/{id}/members/{userId}", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path), ("userId" = i64, Path)), request_body = MemberPermissions,
    responses((status = 200, body = MemberView, description = "What they may do from now on (open connections included)"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn change(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
    body: axum::extract::Request,
) -> Result<Json<MemberView>, ApiError> {
    let server = access::server(&control, &user.0, id, MANAGE).await?;
    let member_id = member_id(&params)?;
    let ApiJson(request) = ApiJson::<MemberPermissions>::from_request(body, &control).await?;
    let permissions = grantable(&request.permissions)?;
    let before = member(&control, id, member_id).await?;
    control.store.put_member(id, member_id, &permissions, now_ms()).await?;
    control.revocations.notify();
    Event::by(&user, "member_changed")
        .on(&server)
        .detail(describe(&before.email, &permissions))
        .record(&control)
        .await;
    Ok(Json(member(&control, id, member_id).await?))
}

#[utoipa::path(delete, path = "/api/servers/{id}/members/{userId}", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path), ("userId" = i64, Path)),
    responses((status = 204, description = "Their access ended, open connections included (an invited account may remove itself)"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn remove(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let member_id = member_id(&params)?;
    let need = if member_id == user.0.id { Need::See } else { MANAGE };
    let server = access::server(&control, &user.0, id, need).await?;
    let before = member(&control, id, member_id).await?;
    control.store.remove_member(id, member_id).await?;
    control.revocations.notify();
    Event::by(&user, "member_removed").on(&server).detail(before.email).record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The permissions asked for, once each, if an owner may grant them all.
fn grantable(asked: &[Permission]) -> Result<Vec<Permission>, ApiError> {
    if let Some(refused) = asked.iter().find(|p| !Permission::GRANTABLE.contains(p)) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{} cannot be granted: it stays with the server's owner", refused.as_str()),
        ));
    }
    let mut permissions = asked.to_vec();
    permissions.sort();
    permissions.dedup();
    Ok(permissions)
}

/// The `{userId}` of a member route: anything else is a 404, like a member that is not one.
fn member_id(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    params.get("userId").and_then(|raw| raw.parse().ok()).ok_or_else(|| ApiError::not_found("member"))
}

async fn member(control: &ControlPlane, server_id: i64, user_id: i64) -> Result<MemberView, ApiError> {
    let members = control.store.members(server_id).await?;
    members.into_iter().find(|m| m.user_id == user_id).ok_or_else(|| ApiError::not_found("member"))
}

fn describe(email: &str, permissions: &[Permission]) -> String {
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    format!("{email}: {}", if names.is_empty() { "see only".to_owned() } else { names.join(", ") })
}
