//! Errors as RFC 9457 `application/problem+json`, with the same reason codes
//! and field violations the services send in gRPC status details.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kit::Error;
use serde::Serialize;
use tonic_types::StatusExt;
use utoipa::ToSchema;

/// An error on its way to becoming an RFC 9457 problem document.
#[derive(Debug)]
pub struct Problem {
    pub status: u16,
    /// Stable reason code: INVALID_ARGUMENT, NOT_FOUND, VERSION_CONFLICT, ...
    pub code: String,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Seconds after which a retry may succeed (429, 503).
    pub retry_after: Option<u64>,
}

/// The problem document as sent (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct ProblemDocument {
    /// URI reference naming the problem type: `https://crm.dev/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable reason code: INVALID_ARGUMENT, NOT_FOUND, VERSION_CONFLICT, ...
    pub code: String,
    /// The fields that were wrong, for INVALID_ARGUMENT.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Problem {
            status: status.as_u16(),
            code: code.to_owned(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let mut problem = Problem::new(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "the request has invalid fields",
        );
        problem.errors.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
        problem
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", detail)
    }

    /// 429 or 503 with a `Retry-After`.
    pub fn retry_later(status: StatusCode, code: &str, detail: &str, seconds: u64) -> Self {
        let mut problem = Problem::new(status, code, detail);
        problem.retry_after = Some(seconds.max(1));
        problem
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let document = ProblemDocument {
            kind: format!(
                "https://crm.dev/problems/{}",
                self.code.to_ascii_lowercase().replace('_', "-")
            ),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status,
            detail: self.detail,
            code: self.code,
            errors: self.errors,
        };
        let body = serde_json::to_vec(&document).unwrap_or_default();
        let mut response = (status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<crate::domain::login_guard::Refusal> for Problem {
    fn from(refusal: crate::domain::login_guard::Refusal) -> Self {
        use crate::domain::login_guard::Refusal;
        match refusal {
            Refusal::TooMany { retry_after } => Problem::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many login attempts; retry later",
                retry_after,
            ),
            Refusal::Busy => Problem::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "the gateway is busy checking passwords; retry shortly",
                1,
            ),
        }
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let code = error.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match error {
            Error::InvalidArgument(violations) => {
                let mut problem =
                    Problem::new(status, code.reason(), "the request has invalid fields");
                problem.errors = violations
                    .into_iter()
                    .map(|v| FieldError {
                        field: v.field,
                        message: v.description,
                    })
                    .collect();
                problem
            }
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Problem::new(status, code.reason(), "internal error")
            }
            other => Problem::new(status, code.reason(), other.to_string()),
        }
    }
}

impl From<sqlx::Error> for Problem {
    fn from(error: sqlx::Error) -> Self {
        Problem::from(Error::from(error))
    }
}

/// Maps a service's gRPC status faithfully, keeping its reason code and
/// field violations.
impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        let details = status.get_error_details();
        let (http, fallback) = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
            }
            Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Code::AlreadyExists => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            Code::Aborted => (StatusCode::PRECONDITION_FAILED, "VERSION_CONFLICT"),
            Code::FailedPrecondition => (StatusCode::CONFLICT, "FAILED_PRECONDITION"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Code::DeadlineExceeded | Code::Cancelled => {
                (StatusCode::GATEWAY_TIMEOUT, "UNAVAILABLE")
            }
            _ => (StatusCode::BAD_GATEWAY, "INTERNAL"),
        };
        let code = details
            .error_info()
            .map(|info| info.reason.clone())
            .unwrap_or_else(|| fallback.to_owned());
        let detail = if http == StatusCode::BAD_GATEWAY {
            "upstream error".to_owned()
        } else {
            status.message().to_owned()
        };
        let mut problem = Problem::new(http, &code, detail);
        if let Some(bad) = details.bad_request() {
            problem.errors = bad
                .field_violations
                .iter()
                .map(|v| FieldError {
                    field: v.field.clone(),
                    message: v.description.clone(),
                })
                .collect();
        }
        problem
    }
}
