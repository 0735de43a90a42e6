//! `/api/admin/templates/*`: admins list, read, change, remove and restore templates, and
//! import eggs (pasted, or fetched from a URL), all without a restart. What they store is kept
//! in the database over the built-in and directory templates of the same name.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{AdminTemplateView, ImportEgg, ImportedTemplate, PutTemplate, TemplateOrigin};
use zlh_proto::time::now_ms;

use super::admin::admin_only;
use crate::ControlPlane;
use crate::access::CurrentUser;
use crate::activity::Event;
use crate::templates::egg::Egg;

/// Template files and eggs are larger than other bodies: the biggest community eggs, with
/// their install scripts, are tens of kilobytes, and JSON escaping grows them.
const TEMPLATE_BODY: usize = 1 << 20;

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidTemplate, message)
}

/// Keeps `source` as `name` (`None`: removed) and makes the catalog show it at once.
async fn store(control: &ControlPlane, name: &str, source: Option<&str>) -> Result<(), ApiError> {
    control.store.put_template(name, source, now_ms()).await?;
    control.templates.stored_changed(control.store.templates().await?);
    Ok(())
}

/// Forgets what admins stored as `name` (a built-in or directory template of that name shows
/// again) and makes the catalog show it at once.
async fn forget(control: &ControlPlane, name: &str) -> Result<(), ApiError> {
    control.store.forget_template(name).await?;
    control.templates.stored_changed(control.store.templates().await?);
    Ok(())
}

fn shown(control: &ControlPlane, name: &str) -> Result<AdminTemplateView, ApiError> {
    control.templates.current().admin_view(name).ok_or_else(|| ApiError::not_found("template"))
}

#[utoipa::path(get, path = "/api/admin/templates", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<AdminTemplateView>, description = "Every template, removed ones included"), (status = 403, body = zlh_proto::ErrorBody)))]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
) -> Result<Json<Vec<AdminTemplateView>>, ApiError> {
    admin_only(&user)?;
    Ok(Json(control.templates.current().admin_list()))
}

#[utoipa::path(get, path = "/api/admin/templates/{name}", tag = "admin", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = AdminTemplateView), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn show(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<AdminTemplateView>, ApiError> {
    admin_only(&user)?;
    Ok(Json(shown(&control, &name)?))
}

#[utoipa::path(put, path = "/api/admin/templates/{name}", tag = "admin", security(("bearer" = [])), params(("name" = String, Path)),
    request_body = PutTemplate,
    responses((status = 200, body = AdminTemplateView, description = "Kept, and offered at once"),
        (status = 400, body = zlh_proto::ErrorBody, description = "invalid_template: what is wrong with it; nothing was changed")))]
pub(super) async fn put(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PutTemplate, TEMPLATE_BODY>,
) -> Result<Json<AdminTemplateView>, ApiError> {
    admin_only(&user)?;
    crate::templates::check(&name, &body.source).map_err(invalid)?;
    store(&control, &name, Some(&body.source)).await?;
    Event::by(&user, "template_changed").detail(name.clone()).record(&control).await;
    Ok(Json(shown(&control, &name)?))
}

#[utoipa::path(delete, path = "/api/admin/templates/{name}", tag = "admin", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 204, description = "No longer offered (servers made from it keep running)"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn remove(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    admin_only(&user)?;
    let template = shown(&control, &name)?;
    if template.removed {
        return Err(ApiError::not_found("template"));
    }
    // A stored template alone is forgotten; one shadowing a built-in or directory template
    // (or being one) leaves a mark that hides it.
    let hides = template.origin != TemplateOrigin::Stored || template.replaces.is_some();
    if hides {
        store(&control, &name, None).await?;
    } else {
        forget(&control, &name).await?;
    }
    Event::by(&user, "template_removed").detail(name).record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/admin/templates/{name}/restore", tag = "admin", security(("bearer" = [])), params(("name" = String, Path)),
    responses((status = 200, body = AdminTemplateView, description = "The built-in or directory template of this name, as it was"),
        (status = 404, body = zlh_proto::ErrorBody, description = "No admin change to undo")))]
pub(super) async fn restore(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    Path(name): Path<String>,
) -> Result<Json<AdminTemplateView>, ApiError> {
    admin_only(&user)?;
    let template = shown(&control, &name)?;
    if template.replaces.is_none() {
        return Err(ApiError::not_found("change to undo"));
    }
    forget(&control, &name).await?;
    Event::by(&user, "template_restored").detail(name.clone()).record(&control).await;
    Ok(Json(shown(&control, &name)?))
}

#[utoipa::path(post, path = "/api/admin/templates/import", tag = "admin", security(("bearer" = [])), request_body = ImportEgg,
    responses((status = 201, body = ImportedTemplate, description = "Imported, offered at once; `notes` say what it does not carry out"),
        (status = 400, body = zlh_proto::ErrorBody, description = "invalid_template: the egg cannot be read (or fetched); nothing was kept"),
        (status = 409, body = zlh_proto::ErrorBody, description = "already_exists: a template has that name")))]
pub(super) async fn import(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ApiJson(body): ApiJson<ImportEgg, TEMPLATE_BODY>,
) -> Result<(StatusCode, Json<ImportedTemplate>), ApiError> {
    admin_only(&user)?;
    let text = match (body.egg, body.url) {
        (Some(text), None) => text,
        (None, Some(url)) => crate::templates::egg::fetch(&url).await.map_err(invalid)?,
        _ => return Err(invalid("send the egg (`egg`) or where to fetch it (`url`), one of them")),
    };
    let egg = Egg::parse(&text).map_err(|e| invalid(e.to_string()))?;
    let name = body.name.unwrap_or_else(|| crate::templates::egg::name_of(&egg.name));
    let imported = egg.to_template();
    crate::templates::check(&name, &imported.toml).map_err(invalid)?;
    if control.templates.current().admin_view(&name).is_some_and(|t| !t.removed) {
        return Err(ApiError::new(
            ErrorCode::AlreadyExists,
            format!("a template is named {name}; choose another name or remove it first"),
        ));
    }
    store(&control, &name, Some(&imported.toml)).await?;
    Event::by(&user, "template_imported").detail(name.clone()).record(&control).await;
    let template = shown(&control, &name)?;
    Ok((StatusCode::CREATED, Json(ImportedTemplate { template, notes: imported.notes })))
}
