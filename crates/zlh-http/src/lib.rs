//! HTTP pieces every ZeroLagHub server shares (the agent and the control plane): the one
//! error type, answered as the JSON envelope of `zlh_proto::error`, a JSON body extractor whose
//! every failure is such an error, and the fallbacks for unknown routes and methods.
#![forbid(unsafe_code)]

mod unread;

pub use unread::close_when_body_unread;

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use zlh_proto::agent::{DiskUsage, GameState};
use zlh_proto::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answered with its code's status and the JSON error envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// Stable code.
    pub code: ErrorCode,
    /// A short sentence for people.
    pub message: String,
    /// The server's state, for power conflicts.
    pub state: Option<GameState>,
    /// The server's disk, on `quota_exceeded`.
    pub disk: Option<DiskUsage>,
    /// Overrides the code's status (an agent's 4xx passed through as is).
    pub status: Option<u16>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), state: None, disk: None, status: None }
    }

    /// Adds the server's state.
    pub fn with_state(mut self, state: GameState) -> ApiError {
        self.state = Some(state);
        self
    }

    /// A server's disk is full: says what it uses of what it may.
    pub fn quota_exceeded(disk: DiskUsage) -> ApiError {
        let message = format!(
            "the server's disk is full ({} of {} MiB used); nothing was written: delete files or backups",
            disk.used_bytes >> 20,
            disk.limit_bytes >> 20
        );
        ApiError { disk: Some(disk), ..ApiError::new(ErrorCode::QuotaExceeded, message) }
    }

    /// Another user's (or a missing) resource: the same answer either way.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("no such {what}"))
    }

    /// Something broke on our side; the details belong in the log, not here.
    pub fn internal() -> ApiError {
        ApiError::new(
            ErrorCode::Internal,
            "something went wrong on our side; try again, and tell the operator if it persists",
        )
    }

    /// An envelope received from elsewhere (an agent), passed on with its status.
    pub fn passthrough(status: u16, body: ErrorBody) -> ApiError {
        ApiError {
            code: body.error.code,
            message: body.error.message,
            state: body.error.state,
            disk: body.error.disk,
            status: Some(status),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> StatusCode {
        StatusCode::from_u16(self.status.unwrap_or(self.code.http_status()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.http_status();
        let detail =
            ErrorDetail { code: self.code, message: self.message, state: self.state, disk: self.disk };
        let body = ErrorBody { error: detail };
        (status, Json(body)).into_response()
    }
}

/// Fallback for unknown routes, marked with [`zlh_proto::error::UNKNOWN_ROUTE_HEADER`].
pub async fn not_found() -> Response {
    let mut response = ApiError::new(ErrorCode::NotFound, "no such route").into_response();
    response
        .headers_mut()
        .insert(zlh_proto::error::UNKNOWN_ROUTE_HEADER, axum::http::HeaderValue::from_static("1"));
    response
}

/// Fallback for known routes with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method")
}

/// Largest JSON body accepted.
pub const MAX_JSON_BODY: usize = 64 * 1024;
/// An oversized body is read and discarded up to this size before the 413 goes out, so the
/// connection closes cleanly and the client reads its answer instead of a reset.
const DRAIN_LIMIT: usize = 4 << 20;

/// A JSON body whose every failure is an [`ApiError`]: 415 without a JSON content type, 413
/// past `LIMIT` bytes ([`MAX_JSON_BODY`] unless a route takes more, such as a template file),
/// 400 with the parser's message for malformed or mistyped JSON.
#[derive(Debug)]
pub struct ApiJson<T, const LIMIT: usize = MAX_JSON_BODY>(pub T);

impl<S, T, const LIMIT: usize> FromRequest<S> for ApiJson<T, LIMIT>
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
            if seen <= LIMIT {
                body.extend_from_slice(&chunk);
            } else if seen > DRAIN_LIMIT.max(LIMIT) {
                break;
            }
        }
        if seen > LIMIT {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the request body is larger than {LIMIT} bytes"),
            ));
        }
        serde_json::from_slice(&body).map(ApiJson).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("the body is not valid JSON for this route: {e}"))
        })
    }
}
