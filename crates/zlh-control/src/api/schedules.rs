//! `/api/servers/{id}/schedules`: a server's schedules, their next times and latest runs
//! (run by `crate::schedules`, whoever is signed in or not).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, Path, State};
use axum::http::StatusCode;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::api::{Permission, ScheduleRequest, ScheduleView};
use zlh_proto::time::{format_ms, now_ms};

use crate::ControlPlane;
use crate::access::{self, CurrentUser, Need, ServerId};
use crate::activity::Event;
use crate::db::{Schedule, Server};

const SCHEDULES: Need = Need::To(Permission::Schedules);
/// Most schedules one server has.
const MAX_PER_SERVER: usize = 20;

#[utoipa::path(get, path = "/api/servers/{id}/schedules", tag = "schedules", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = [ScheduleView]), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn list(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    access::server(&control, &user.0, id, SCHEDULES).await?;
    let mut views = Vec::new();
    for schedule in control.store.schedules(id).await? {
        views.push(view(&control, schedule).await?);
    }
    Ok(Json(views))
}

#[utoipa::path(post, path = "/api/servers/{id}/schedules", tag = "schedules", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = ScheduleRequest,
    responses((status = 201, body = ScheduleView),
        (status = 400, body = zlh_proto::ErrorBody, description = "invalid_schedule: says what is wrong"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn create(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    body: axum::extract::Request,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let server = access::server(&control, &user.0, id, SCHEDULES).await?;
    let request = checked(&control, body).await?;
    if control.store.schedules(id).await?.len() >= MAX_PER_SERVER {
        return Err(invalid(format!("a server has at most {MAX_PER_SERVER} schedules")));
    }
    let next = crate::schedules::next_after(&request, now_ms());
    let schedule = control.store.insert_schedule(id, &request, next, now_ms()).await?;
    control.scheduler.changed();
    Event::by(&user, "schedule_created").on(&server).detail(request.name).record(&control).await;
    Ok((StatusCode::CREATED, Json(view(&control, schedule).await?)))
}

#[utoipa::path(put, path = "/api/servers/{id}/schedules/{scheduleId}", tag = "schedules", security(("bearer" = [])),
    params(("id" = i64, Path), ("scheduleId" = i64, Path)), request_body = ScheduleRequest,
    responses((status = 200, body = ScheduleView, description = "Replaced; its next time follows the new expression"),
        (status = 400, body = zlh_proto::ErrorBody), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn replace(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
    body: axum::extract::Request,
) -> Result<Json<ScheduleView>, ApiError> {
    let (server, schedule) = schedule(&control, &user, id, &params).await?;
    let request = checked(&control, body).await?;
    let next = crate::schedules::next_after(&request, now_ms());
    control.store.update_schedule(schedule.id, &request, next).await?;
    control.scheduler.changed();
    Event::by(&user, "schedule_changed").on(&server).detail(request.name.clone()).record(&control).await;
    Ok(Json(view(&control, Schedule { request, next_run_at_ms: next, ..schedule }).await?))
}

#[utoipa::path(delete, path = "/api/servers/{id}/schedules/{scheduleId}", tag = "schedules", security(("bearer" = [])),
    params(("id" = i64, Path), ("scheduleId" = i64, Path)),
    responses((status = 204, description = "Removed with its runs (a run under way finishes)"), (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn remove(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let (server, schedule) = schedule(&control, &user, id, &params).await?;
    control.store.delete_schedule(schedule.id).await?;
    control.scheduler.changed();
    Event::by(&user, "schedule_deleted").on(&server).detail(schedule.request.name).record(&control).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/servers/{id}/schedules/{scheduleId}/run", tag = "schedules", security(("bearer" = [])),
    params(("id" = i64, Path), ("scheduleId" = i64, Path)),
    responses((status = 202, body = ScheduleView, description = "A run started (disabled schedules too); its outcome shows in runs"),
        (status = 404, body = zlh_proto::ErrorBody)))]
pub(super) async fn run_now(
    State(control): State<Arc<ControlPlane>>,
    user: CurrentUser,
    ServerId(id): ServerId,
    Path(params): Path<HashMap<String, String>>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let (server, schedule) = schedule(&control, &user, id, &params).await?;
    crate::schedules::start(&control, schedule.clone(), Some("run by hand".into())).await?;
    Event::by(&user, "schedule_run").on(&server).detail(schedule.request.name.clone()).record(&control).await;
    Ok((StatusCode::ACCEPTED, Json(view(&control, schedule).await?)))
}

/// The schedule a route names, on a server the user may schedule on.
async fn schedule(
    control: &ControlPlane,
    user: &CurrentUser,
    id: i64,
    params: &HashMap<String, String>,
) -> Result<(Server, Schedule), ApiError> {
    let server = access::server(control, &user.0, id, SCHEDULES).await?;
    let missing = || ApiError::not_found("schedule");
    let schedule_id: i64 = params.get("scheduleId").and_then(|raw| raw.parse().ok()).ok_or_else(missing)?;
    let schedule = control.store.schedule(id, schedule_id).await?.ok_or_else(missing)?;
    Ok((server, schedule))
}

async fn checked(
    control: &Arc<ControlPlane>,
    body: axum::extract::Request,
) -> Result<ScheduleRequest, ApiError> {
    let ApiJson(mut request) = ApiJson::<ScheduleRequest>::from_request(body, control).await?;
    crate::schedules::check(&request).map_err(invalid)?;
    request.name = request.name.trim().to_owned();
    request.cron = request.cron.trim().to_owned();
    Ok(request)
}

fn invalid(why: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSchedule, why)
}

async fn view(control: &ControlPlane, schedule: Schedule) -> Result<ScheduleView, ApiError> {
    let runs = control.store.schedule_runs(schedule.id).await?;
    let ScheduleRequest { name, cron, enabled, only_when_running, steps } = schedule.request;
    Ok(ScheduleView {
        id: schedule.id,
        description: crate::schedules::describe(&cron),
        name,
        cron,
        enabled,
        only_when_running,
        steps,
        next_run_at: schedule.next_run_at_ms.map(format_ms),
        runs,
    })
}
