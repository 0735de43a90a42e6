//! The one table of error codes a client can see, and the JSON envelope that carries them.
//!
//! Every error body anywhere in ZeroLagHub is `{"error": {"code": "...", "message": "..."}}`,
//! sometimes with a few extra fields (such as the current `state` on a power conflict). The code
//! is stable and machine-readable; the message is a short sentence for people. Details that could
//! leak internals (paths, agent URLs, secrets) go to the log, never here.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $variant:ident => ($status:literal, $name:literal), )*) => {
        /// Every error code, with its HTTP status and its snake_case name on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// All codes, in table order (used by the exhaustiveness test and documentation).
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The HTTP status this code is answered with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// The snake_case name sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }
        }
    };
}

error_codes! {
    // Requests a client got wrong.
    BadRequest => (400, "bad_request"),
    InvalidJson => (400, "invalid_json"),
    InvalidCommand => (400, "invalid_command"),
    InvalidEmail => (400, "invalid_email"),
    WeakPassword => (400, "weak_password"),
    UnknownTemplate => (400, "unknown_template"),
    InvalidPath => (400, "invalid_path"),
    UploadIncomplete => (400, "upload_incomplete"),
    InvalidLimits => (400, "invalid_limits"),
    InvalidVariable => (400, "invalid_variable"),
    InvalidTemplate => (400, "invalid_template"),
    InvalidSchedule => (400, "invalid_schedule"),
    // Who you are.
    Unauthorized => (401, "unauthorized"),
    InvalidCredentials => (401, "invalid_credentials"),
    TokenExpired => (401, "token_expired"),
    TokenInvalid => (401, "token_invalid"),
    TokenReused => (401, "token_reused"),
    InvalidTicket => (401, "invalid_ticket"),
    TotpRequired => (401, "totp_required"),
    TotpInvalid => (401, "totp_invalid"),
    // What you may do.
    Forbidden => (403, "forbidden"),
    AccountSuspended => (403, "account_suspended"),
    EmailUnverified => (403, "email_unverified"),
    TwoFactorRequired => (403, "two_factor_required"),
    RegistrationDisabled => (403, "registration_disabled"),
    OriginNotAllowed => (403, "origin_not_allowed"),
    PathOutsideRoot => (403, "path_outside_root"),
    FileDenied => (403, "file_denied"),
    VariableNotEditable => (403, "variable_not_editable"),
    NotFound => (404, "not_found"),
    MethodNotAllowed => (405, "method_not_allowed"),
    // The state of things.
    AlreadyExists => (409, "already_exists"),
    BackupInProgress => (409, "backup_in_progress"),
    BackupLocked => (409, "backup_locked"),
    DirectoryNotEmpty => (409, "directory_not_empty"),
    AlreadyRunning => (409, "already_running"),
    PowerActionInProgress => (409, "power_action_in_progress"),
    NotRunning => (409, "not_running"),
    InUse => (409, "in_use"),
    InstallInProgress => (409, "install_in_progress"),
    InstallFailed => (409, "install_failed"),
    MissingFiles => (409, "missing_files"),
    PayloadTooLarge => (413, "payload_too_large"),
    UnsupportedMediaType => (415, "unsupported_media_type"),
    RateLimited => (429, "rate_limited"),
    // Our side.
    Internal => (500, "internal"),
    StartFailed => (500, "start_failed"),
    // An agent behind the control plane (the browser never learns where it is).
    AgentUnsupported => (501, "agent_unsupported"),
    AgentUnreachable => (502, "agent_unreachable"),
    AgentAuthFailed => (502, "agent_auth_failed"),
    AgentError => (502, "agent_error"),
    ProvisioningFailed => (502, "provisioning_failed"),
    ArtifactStoreFailed => (502, "artifact_store_failed"),
    ShuttingDown => (503, "shutting_down"),
    NoFreePorts => (503, "no_free_ports"),
    NodeFull => (503, "node_full"),
    InsufficientStorage => (507, "insufficient_storage"),
    QuotaExceeded => (507, "quota_exceeded"),
    AgentTimeout => (504, "agent_timeout"),
    ProvisioningTimeout => (504, "provisioning_timeout"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header on the 404 of a route the server does not have: how a client tells an older server
/// (without the route) from a missing thing, which share the `not_found` code.
pub const UNKNOWN_ROUTE_HEADER: &str = "x-zlh-unknown-route";

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// A short sentence for people: what happened and, where useful, what to do next.
    pub message: String,
    /// The supervised server's state, on power conflicts, so a client need not ask again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::agent::GameState>,
    /// The server's disk, on `quota_exceeded`: what it uses of its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<crate::agent::DiskUsage>,
}

impl ErrorBody {
    /// An error body without extra fields.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody { error: ErrorDetail { code, message: message.into(), state: None, disk: None } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_snake_case_and_match_serde() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate error code name {name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
            let json = serde_json::to_string(code).expect("serialize");
            assert_eq!(json, format!("\"{name}\""));
            assert!((400..600).contains(&code.http_status()), "{name}");
        }
    }
}
