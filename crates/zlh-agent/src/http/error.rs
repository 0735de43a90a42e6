//! The one error type of the agent's HTTP API, and the JSON extractor that produces it.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
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
        ApiError { code, message: message.into(), state: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            ErrorBody { error: ErrorDetail { code: self.code, message: self.message, state: self.state } };
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
        ApiError { code, message: error.to_string(), state }
    }
}

/// Largest JSON body accepted.
const MAX_JSON_BODY: usize = 64 * 1024;
/// An oversized body is read and discarded up to this size before the 413 goes out, so the
/// connection closes cleanly and the client reads its answer instead of a reset.
const DRAIN_LIMIT: usize = 4 << 20;

/// A JSON body whose every failure is an [`ApiError`]: 415 without a JSON content type, 413
/// past the size limit, 400 with the parser's message for malformed or mistyped JSON.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        use futures_util::StreamExt;
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        if !is_json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let mut body = Vec::new();
        let mut seen = 0usize;
        let mut stream = request.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|_| ApiError::new(ErrorCode::BadRequest, "the request body could not be read"))?;
            seen += chunk.len();
            if seen <= MAX_JSON_BODY {
                body.extend_from_slice(&chunk);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
        if seen > MAX_JSON_BODY {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {MAX_JSON_BODY} bytes"),
            ));
        }
        serde_json::from_slice(&body).map(ApiJson).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON for this route: {e}"))
        })
    }
}
