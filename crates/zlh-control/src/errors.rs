//! How the core's errors become HTTP answers: one `From` impl per lower error, so handlers in
//! `api/`, `ide/` and [`crate::access`] use `?` and the status and code of each failure are
//! decided here once.
//!
//! Architecture Invariant: the core (store, registry, drivers, provisioning, templates) never
//! names an HTTP type; this module is where its failures meet `zlh_http::ApiError`.

use zlh_http::ApiError;
use zlh_proto::ErrorCode;

use crate::artifacts::ArtifactError;
use crate::db::StoreError;
use crate::provision::ProvisionError;
use crate::registry::AgentError;
use crate::templates::TemplateError;

/// A storage failure: logged with its details, answered without them.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "storage failed");
        ApiError::internal()
    }
}

/// An agent failure, as the browser may see it. An agent refusing our secret is never a 401 to
/// the browser: that would sign the user out.
impl From<AgentError> for ApiError {
    fn from(error: AgentError) -> ApiError {
        let message = error.to_string();
        match error {
            AgentError::Unreachable => ApiError::new(ErrorCode::AgentUnreachable, message),
            AgentError::Timeout => ApiError::new(ErrorCode::AgentTimeout, message),
            AgentError::AuthFailed => {
                tracing::error!("an agent refused the control plane's secret");
                ApiError::new(ErrorCode::AgentAuthFailed, message)
            }
            AgentError::Unsupported => ApiError::new(ErrorCode::AgentUnsupported, message),
            // The agent's own refusals, and a full disk, which the user can act on.
            AgentError::Upstream { status, body }
                if (400..500).contains(&status)
                    || matches!(
                        body.error.code,
                        ErrorCode::InsufficientStorage | ErrorCode::QuotaExceeded
                    ) =>
            {
                ApiError::passthrough(status, body)
            }
            AgentError::Upstream { body, .. } => ApiError::new(
                ErrorCode::AgentError,
                format!("the server's agent failed: {}", body.error.message),
            ),
            AgentError::Protocol => ApiError::new(ErrorCode::AgentError, message),
        }
    }
}

impl From<TemplateError> for ApiError {
    fn from(error: TemplateError) -> ApiError {
        let code = match error {
            TemplateError::Unknown(_) => ErrorCode::UnknownTemplate,
            TemplateError::Invalid(_) => ErrorCode::BadRequest,
            TemplateError::Variable(_) => ErrorCode::InvalidVariable,
            TemplateError::NotEditable(_) => ErrorCode::VariableNotEditable,
        };
        ApiError::new(code, error.to_string())
    }
}

impl From<ArtifactError> for ApiError {
    fn from(error: ArtifactError) -> ApiError {
        ApiError::new(ErrorCode::Internal, error.to_string())
    }
}

impl From<ProvisionError> for ApiError {
    fn from(error: ProvisionError) -> ApiError {
        let message = error.to_string();
        match error {
            ProvisionError::Template(error) => error.into(),
            ProvisionError::Catalog(error) => error.into(),
            ProvisionError::Store(error) => error.into(),
            ProvisionError::Unavailable(_) => ApiError::new(ErrorCode::BadRequest, message),
            ProvisionError::Driver(_) | ProvisionError::FailedToStart(_) => {
                ApiError::new(ErrorCode::ProvisioningFailed, message)
            }
            ProvisionError::Timeout { .. } => ApiError::new(ErrorCode::ProvisioningTimeout, message),
            ProvisionError::NoFreePorts => ApiError::new(ErrorCode::NoFreePorts, message),
            ProvisionError::NodeFull => ApiError::new(ErrorCode::NodeFull, message),
            ProvisionError::Limits(_) => ApiError::new(ErrorCode::InvalidLimits, message),
            ProvisionError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            ProvisionError::Incomplete(_) => ApiError::new(ErrorCode::Internal, message),
            ProvisionError::Aborted => ApiError::internal(),
        }
    }
}
