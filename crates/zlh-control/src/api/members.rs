//! `/api/servers/{id}/members`: the addresses a server's owner invited, and what the account
//! with each may do.
//!
//! Only the owner (or an admin) manages them; an invited account may leave. An invitation is
//! to an address and says nothing about whether an account uses it (the answer is the same
//! either way: no way to learn who has an account here); it holds for the account that proved
//! the address. Narrowing or ending one takes effect at once, open consoles and IDE connections
//! included (see `access::Revocations`).

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
/// Most addresses one server is shared with.
const MAX_MEMBERS: usize = 50;

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
    responses((status = 201, body = MemberView, description = "Invited: the account with that address (now or later) sees the server"),
        (status = 400, body = zlh_proto::ErrorBody, description = "not an address, or a permission that cannot be granted"),
        (status = 409, body = zlh_proto::ErrorBody, description = "already_exists: invited already, or the owner's own address")))]
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
    let email = request.email.trim().to_lowercase();
    if email.len() > 254 || !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::new(ErrorCode::InvalidEmail, "that is not an email address"));
    }
    if control.store.members(id).await?.len() >= MAX_MEMBERS {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("a server is shared with at most {MAX_MEMBERS} addresses"),
        ));
    }
    let owner = control.store.user_by_id(server.owner_id).await?;
    if owner.is_some_and(|owner| owner.email.eq_ignore_ascii_case(&email)) {
        return Err(ApiError::new(ErrorCode::AlreadyExists, "that is the owner's own address"));
    }
    let Some(member_id) = control.store.add_member(id, &email, &permissions, now_ms()).await? else {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "that address is invited already: change what it may do instead",
        ));
    };
    Event::by(&user, "member_added")
        .on(&server)
        .detail(describe(&email, &permissions))
        .record(&control)
        .await;
    Ok((StatusCode::CREATED, Json(member(&control, id, member_id).await?)))
}

#[utoipa::path(put, path = "/api/servers/{id}/members/{memberId}", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path), ("memberId" = i64, Path)), request_body = MemberPermissions,
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
    if !control.store.change_member(id, member_id, &permissions).await? {
        return Err(ApiError::not_found("member"));
    }
    control.access_changed().await;
    let changed = member(&control, id, member_id).await?;
    Event::by(&user, "member_changed")
        .on(&server)
        .detail(describe(&changed.email, &permissions))
        .record(&control)
        .await;
    Ok(Json(changed))
}

#[utoipa::path(delete, path = "/api/servers/{id}/members/{memberId}", tag = "members", security(("bearer" = [])),
    params(("id" = i64, Path), ("memberId" = i64, Path)),
    responses((status = 204, description = "Their access ended, open connections included (an invited account may remove itself)"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn remove(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let server = access::server(&control, &user.0, id, Need::See).await?;
    let member_id = member_id(&params)?;
    let invited = member(&control, id, member_id).await?;
    // The owner and admins remove anyone; an invited account, itself.
    let itself = user.0.email_verified_at_ms.is_some() && invited.email.eq_ignore_ascii_case(&user.0.email);
    if !itself {
        access::server(&control, &user.0, id, MANAGE).await?;
    }
    control.store.remove_member(id, member_id).await?;
    control.access_changed().await;
    Event::by(&user, "member_removed").on(&server).detail(invited.email).record(&control).await;
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

/// The `{memberId}` of a member route: anything else is a 404, like a member that is not one.
fn member_id(params: &HashMap<String, String>) -> Result<i64, ApiError> {
    params.get("memberId").and_then(|raw| raw.parse().ok()).ok_or_else(|| ApiError::not_found("member"))
}

async fn member(control: &ControlPlane, server_id: i64, member_id: i64) -> Result<MemberView, ApiError> {
    let members = control.store.members(server_id).await?;
    members.into_iter().find(|m| m.id == member_id).ok_or_else(|| ApiError::not_found("member"))
}

fn describe(email: &str, permissions: &[Permission]) -> String {
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    format!("{email}: {}", if names.is_empty() { "see only".to_owned() } else { names.join(", ") })
}
