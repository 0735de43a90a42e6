//! The agent secret check: a bearer token compared in constant time.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use zlh_proto::ErrorCode;

use zlh_http::ApiError;

use super::AppState;

/// Lets `/health` through, and everything else only with `Authorization: Bearer <secret>`.
/// A refusal is logged with the method and path, never with what was presented.
pub(super) async fn require_secret(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let expected = state.config.secret.expose().as_bytes();
    match presented {
        Some(token) if bool::from(token.as_bytes().ct_eq(expected)) => next.run(request).await,
        _ => {
            tracing::warn!(
                method = %request.method(),
                path = request.uri().path(),
                credentials = if presented.is_some() { "wrong" } else { "missing" },
                "request refused: agent secret missing or wrong"
            );
            ApiError::new(ErrorCode::Unauthorized, "this agent requires its bearer secret").into_response()
        }
    }
}
