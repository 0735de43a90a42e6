//! The one error type of the agent's HTTP API, and the JSON extractor that produces it.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use zlh_proto::agent::GameState;
use zlh_proto::{ErrorBody, ErrorCode, ErrorDetail};

use crate::supervisor::PowerError;

/// An error answered with its code's status and the JSON error envelope.
#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: String,
    state: Option<GameState>,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            state: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                state: self.state,
            },
        };
        (status, Json(body)).into_response()
    }
}

impl From<PowerError> for ApiError {
    fn from(error: PowerError) -> ApiError {
        let (code, state) = match &error {
            PowerError::AlreadyRunning(state) => (ErrorCode::AlreadyRunning, Some(*state)),
            PowerError::InProgress(state) => (ErrorCode::PowerActionInProgress, Some(*state)),
            PowerError::NotRunning(state) => (ErrorCode::NotRunning, Some(*state)),
            PowerError::StartFailed(_) => (ErrorCode::StartFailed, None),
            PowerError::ShuttingDown => (ErrorCode::ShuttingDown, None),
        };
        ApiError {
            code,
            message: error.to_string(),
            state,
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ),
            _ => ApiError::new(ErrorCode::InvalidJson, rejection.body_text()),
        }
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (so malformed bodies get the JSON envelope).
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(request, state)
            .await
            .map(|Json(value)| ApiJson(value))
            .map_err(ApiError::from)
    }
}
