//! The HTTP front: every route (the API's and the IDE's) and the middleware in front of them.
//!
//! Layering (ARCHITECTURE.md): `http` composes `api` and `ide`; both use [`crate::access`] for
//! who may touch what and [`crate::errors`] for how the core's failures are answered. Neither
//! imports the other.

use std::sync::{Arc, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::ControlPlane;
use crate::metrics::Metrics;

/// Every route of the control plane.
pub fn router(control: Arc<ControlPlane>) -> Router {
    crate::api::routes()
        .merge(crate::ide::routes())
        .route("/api/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&control.metrics), count_requests))
        .fallback(zlh_http::not_found)
        .method_not_allowed_fallback(zlh_http::method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&control), crate::ide::hosted))
        .layer(middleware::from_fn(zlh_http::close_when_body_unread))
        .with_state(control)
}

/// Counts requests by method, route template and status.
async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    let response = next.run(request).await;
    metrics.observe_request(method, route, response.status().as_u16());
    response
}

/// `GET /api/openapi.json`: the API's and the IDE's routes in one document, built once.
async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    Json(DOCUMENT.get_or_init(|| {
        let mut document = crate::api::openapi::document();
        document.merge(crate::ide::IdeDoc::openapi());
        document
    }))
}
