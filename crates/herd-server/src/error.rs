//! The one place that maps errors to HTTP statuses and bodies.
//!
//! Two shapes: Fleet's REST error (`{"message", "errors": [{"name", "reason"}]}`) for the admin API, and
//! osquery's (`{"error", "node_invalid"}`) for the osquery TLS API, whose agents parse every body as JSON.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herd_proto::fleet::{ErrorBody, ErrorDetail};
use herd_proto::osquery::ErrorResponse;
use herd_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated,
    /// A device endpoint's token (in the path) names no host: the reason says what to do about it.
    #[error("{0}")]
    DeviceTokenRejected(&'static str),
    #[error("authentication failed")]
    BadCredentials,
    #[error("forbidden")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {reason}")]
    Validation { field: String, reason: String },
    /// `reason` names what was counted (see `rate_limit`).
    #[error("{reason}, retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64, reason: &'static str },
    /// An admin set this user's password: until they choose their own, nothing but that is allowed.
    #[error("password reset required: choose a new password with POST /api/v1/fleet/change_password first")]
    PasswordResetRequired,
    /// The body passed one of its limits (size, size after gunzip, nesting, number of values): which one.
    #[error("{0}")]
    TooLarge(String),
    #[error("database unavailable, retry shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::rate_limit::Refusal> for ApiError {
    fn from(refusal: crate::rate_limit::Refusal) -> Self {
        ApiError::RateLimited { retry_after_s: refusal.retry_after_s, reason: refusal.reason }
    }
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::Validation { field: field.into(), reason: reason.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated | ApiError::BadCredentials | ApiError::DeviceTokenRejected(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden | ApiError::PasswordResetRequired => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> ErrorBody {
        let (message, name, reason) = match self {
            ApiError::Validation { field, reason } => ("Validation Failed".to_string(), field.clone(), reason.clone()),
            ApiError::BadRequest(reason) => ("Bad request".to_string(), "base".to_string(), reason.clone()),
            ApiError::Unauthenticated => {
                ("Authentication required".to_string(), "base".to_string(), "authentication required".to_string())
            }
            ApiError::DeviceTokenRejected(reason) => {
                ("Invalid device token".to_string(), "token".to_string(), reason.to_string())
            }
            ApiError::BadCredentials => {
                ("Authentication failed".to_string(), "base".to_string(), "authentication failed".to_string())
            }
            ApiError::Forbidden => ("Permission Denied".to_string(), "base".to_string(), "forbidden".to_string()),
            ApiError::Internal(_) => {
                ("Internal error".to_string(), "base".to_string(), "internal error, see the server log".to_string())
            }
            other => (capitalised(&other.to_string()), "base".to_string(), other.to_string()),
        };
        ErrorBody { message, errors: vec![ErrorDetail { name, reason }] }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            return ApiError::Unavailable;
        }
        match err {
            StoreError::Conflict(reason) => ApiError::Conflict(reason),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::HostGone => ApiError::NotFound("host"),
            StoreError::Invalid { field, reason } => ApiError::Validation { field: field.into(), reason },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "request failed");
        }
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::RateLimited { retry_after_s, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

/// Errors of the osquery TLS API.
#[derive(Debug, thiserror::Error)]
pub enum OsqueryError {
    /// Unknown, missing or revoked node key, or a bad enroll secret: the agent must enroll (again).
    #[error("{0}")]
    NodeInvalid(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but clashes with what another host owns (409).
    #[error("{0}")]
    Conflict(String),
    /// What the request names is not this host's (a script execution it was not given): 404.
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{reason}, retry in {retry_after_s} s")]
    RateLimited { retry_after_s: u64, reason: &'static str },
    /// A limit other than failed attempts (a host's result-log budget): 429 with the reason and Retry-After.
    #[error("{reason}")]
    Throttled { reason: String, retry_after_s: u64 },
    /// The body passed one of its limits (size, size after gunzip, nesting, number of values): which one.
    #[error("{0}")]
    TooLarge(String),
    #[error("database unavailable, retry shortly")]
    Unavailable,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<crate::rate_limit::Refusal> for OsqueryError {
    fn from(refusal: crate::rate_limit::Refusal) -> Self {
        OsqueryError::RateLimited { retry_after_s: refusal.retry_after_s, reason: refusal.reason }
    }
}

impl From<StoreError> for OsqueryError {
    fn from(err: StoreError) -> Self {
        if err.is_unavailable() {
            tracing::warn!(error = %err, "database unavailable");
            return OsqueryError::Unavailable;
        }
        match err {
            // Deleted since it authenticated (perhaps through another server): the agent must enroll again.
            StoreError::HostGone => OsqueryError::NodeInvalid("host was deleted"),
            other => OsqueryError::Internal(other.into()),
        }
    }
}

impl IntoResponse for OsqueryError {
    fn into_response(self) -> Response {
        let (status, node_invalid) = match &self {
            OsqueryError::NodeInvalid(_) => (StatusCode::UNAUTHORIZED, true),
            OsqueryError::BadRequest(_) => (StatusCode::BAD_REQUEST, false),
            OsqueryError::Conflict(_) => (StatusCode::CONFLICT, false),
            OsqueryError::NotFound(_) => (StatusCode::NOT_FOUND, false),
            OsqueryError::RateLimited { .. } | OsqueryError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, false),
            OsqueryError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, false),
            OsqueryError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, false),
            OsqueryError::Internal(err) => {
                tracing::error!(error = format!("{err:#}"), "osquery request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, false)
            }
        };
        let body = ErrorResponse { error: self.to_string(), node_invalid };
        let mut response = (status, Json(body)).into_response();
        if let OsqueryError::RateLimited { retry_after_s, .. } | OsqueryError::Throttled { retry_after_s, .. } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}
