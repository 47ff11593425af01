//! One error type for every service, mapped once to `tonic::Status` with
//! google.rpc rich details.
//!
//! Every error carries a closed [`ErrorCode`] (the `ErrorInfo.reason` clients
//! switch on) and, for bad input, the violated fields. Internal failures are
//! logged with their cause and reach the caller only as a generic message:
//! SQL, hostnames and stack traces never leave the process.

use std::fmt;

use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Domain used in `google.rpc.ErrorInfo.domain`.
pub const ERROR_DOMAIN: &str = "crm";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The closed set of reasons a call can fail for. The gateway maps the same
/// codes to HTTP problem types, so both edges speak the same language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    VersionConflict,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Stable reason string sent as `ErrorInfo.reason`.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::VersionConflict => "VERSION_CONFLICT",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// The gRPC code this reason travels as.
    pub fn grpc_code(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::VersionConflict => Code::Aborted,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::RateLimited => Code::ResourceExhausted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        }
    }

    /// The HTTP status the gateway answers with for this reason.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::NotFound => 404,
            ErrorCode::AlreadyExists => 409,
            ErrorCode::VersionConflict => 412,
            ErrorCode::FailedPrecondition => 409,
            ErrorCode::PermissionDenied => 403,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// One field that failed validation, named by its path in the request
/// (`contact.emails[1].address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", join_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{entity} {id} was changed by someone else (expected version {expected})")]
    VersionConflict {
        entity: &'static str,
        id: String,
        expected: i64,
    },
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Violations named in a status at the most. A status travels in HTTP/2
/// headers (`grpc-message`, `grpc-status-details-bin`), which clients cap
/// (16 KiB by default): a request with hundreds of bad fields, each echoing
/// part of its value, would otherwise turn into a transport error instead
/// of a 400 naming its fields.
pub const MAX_VIOLATIONS: usize = 20;
/// Bytes of a field name or description kept in a status's details.
const MAX_DETAIL_BYTES: usize = 150;
/// Violations spelled out in the status message (the details hold more).
const MESSAGE_VIOLATIONS: usize = 3;

/// `text` cut to at most `max` bytes on a character boundary.
fn clipped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn join_violations(violations: &[FieldViolation]) -> String {
    let mut joined = violations
        .iter()
        .take(MESSAGE_VIOLATIONS)
        .map(|v| {
            format!(
                "{}: {}",
                clipped(&v.field, 100),
                clipped(&v.description, 100)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > MESSAGE_VIOLATIONS {
        joined.push_str(&format!(
            "; and {} more",
            violations.len() - MESSAGE_VIOLATIONS
        ));
    }
    joined
}

impl Error {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    /// A unique violation told in the caller's terms ("a segment named X
    /// already exists"); any other error is left as it is.
    pub fn exists_as(self, message: impl FnOnce() -> String) -> Self {
        match self {
            Error::AlreadyExists(_) => Error::AlreadyExists(message()),
            other => other,
        }
    }

    /// Another service (`service`) failed a call made for this request:
    /// worth a retry.
    pub fn upstream(service: &str, status: &tonic::Status) -> Self {
        Error::Unavailable(format!(
            "the {service} service did not answer ({}); retry",
            status.message()
        ))
    }

    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Error::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Error::Internal(error.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::VersionConflict { .. } => ErrorCode::VersionConflict,
            Error::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Error::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// Collects field violations so a request reports all its bad fields at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Records the violation of a parse result and returns its value if any.
    pub fn check<T>(&mut self, result: Result<T, FieldViolation>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names of the violated fields, in order.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|v| v.field.as_str()).collect()
    }

    /// `Ok(())` when nothing was violated, otherwise `InvalidArgument` with all.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error {
            // PostgreSQL SQLSTATEs that are the caller's doing, not ours.
            match db.code().as_deref() {
                // Constraint names are schema internals: logged, not sent.
                Some("23505") => {
                    tracing::debug!(constraint = ?db.constraint(), "unique violation");
                    return Error::AlreadyExists(
                        "a record with the same unique values already exists".into(),
                    );
                }
                Some("23503") => {
                    tracing::debug!(constraint = ?db.constraint(), "foreign key violation");
                    return Error::FailedPrecondition(
                        "a referenced record does not exist or is still referenced".into(),
                    );
                }
                // Text PostgreSQL cannot store (a NUL byte): the caller's input.
                Some("22021") | Some("22P05") => {
                    return Error::invalid("request", "text must not contain NUL characters");
                }
                Some("40001") | Some("40P01") => {
                    return Error::Unavailable("concurrent update, retry the request".into())
                }
                _ => {}
            }
        }
        if matches!(
            error,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed
        ) {
            return Error::Unavailable("database unavailable".into());
        }
        Error::Internal(error.into())
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        let mut details = ErrorDetails::new();
        details.set_error_info(
            code.reason(),
            ERROR_DOMAIN,
            std::collections::HashMap::<String, String>::new(),
        );
        let message = match &error {
            Error::InvalidArgument(violations) => {
                for violation in violations.iter().take(MAX_VIOLATIONS) {
                    details.add_bad_request_violation(
                        clipped(&violation.field, MAX_DETAIL_BYTES),
                        clipped(&violation.description, MAX_DETAIL_BYTES),
                    );
                }
                error.to_string()
            }
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error".to_owned()
            }
            Error::Unavailable(reason) => {
                tracing::warn!(%reason, "dependency unavailable");
                error.to_string()
            }
            _ => error.to_string(),
        };
        tonic::Status::with_error_details(code.grpc_code(), message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_field() {
        let mut violations = Violations::new();
        violations.add("email", "is not an e-mail address");
        violations.add("phone", "is not E.164");
        let status = tonic::Status::from(violations.into_result().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["email", "phone"]);
        assert_eq!(
            details.error_info().expect("error info").reason,
            "INVALID_ARGUMENT"
        );
    }

    #[test]
    fn a_flood_of_violations_still_fits_in_headers() {
        let mut violations = Violations::new();
        for i in 0..500 {
            violations.add(
                format!("line_items[{i}].description"),
                "\u{1F600}".repeat(400),
            );
        }
        let status = tonic::Status::from(violations.into_result().unwrap_err());
        let details = status.get_error_details();
        let bad = details.bad_request().expect("bad request details");
        assert_eq!(bad.field_violations.len(), MAX_VIOLATIONS);
        assert!(
            status.message().ends_with("; and 497 more"),
            "{}",
            status.message()
        );
        // On the wire the message is percent-encoded (3 bytes a byte at
        // worst) and the details base64 (4 for 3).
        assert!(status.message().len() * 3 + status.details().len() * 4 / 3 < 16 * 1024);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = tonic::Status::from(Error::internal(anyhow::anyhow!(
            "relation \"secret\" does not exist"
        )));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
    }
}
