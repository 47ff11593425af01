//! What every service's gRPC handlers share: running a handler body with
//! the verified caller, committing, paging answers and audit fields.

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::{Audit, PageResponse};
use tonic::{Request, Response, Status};

use crate::auth::CallerContext;
use crate::db::TenantTx;

/// Runs a handler body that works on the caller and the decoded request.
pub async fn handle<T, R, F, Fut>(request: Request<T>, body: F) -> Result<Response<R>, Status>
where
    F: FnOnce(CallerContext, T) -> Fut,
    Fut: std::future::Future<Output = crate::Result<R>>,
{
    let caller = crate::auth::caller(&request)?;
    body(caller, request.into_inner())
        .await
        .map(Response::new)
        .map_err(Status::from)
}

/// Commits, mapping failures like any other database error.
pub async fn commit(tx: TenantTx) -> crate::Result<()> {
    tx.commit().await.map_err(crate::Error::from)
}

pub fn page_response(next: String) -> Option<PageResponse> {
    Some(PageResponse {
        next_page_token: next,
    })
}

/// The audit block of a record from its columns.
pub fn audit(
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
) -> Option<Audit> {
    Some(Audit {
        created_at: Some(crate::time::to_timestamp(created_at)),
        created_by,
        updated_at: Some(crate::time::to_timestamp(updated_at)),
        updated_by,
        version,
    })
}

/// The version a stored record is at (its `audit.version`; 0 before the
/// first write).
pub fn version_of(audit: &Option<crm_proto::crm::common::v1::Audit>) -> i64 {
    audit.as_ref().map(|a| a.version).unwrap_or_default()
}

/// Refuses a write based on a stale read: `expected` is the request's
/// `expected_version` (0 = no check), `actual` the stored record's.
pub fn check_version(
    entity: &'static str,
    id: &str,
    expected: i64,
    actual: i64,
) -> crate::Result<()> {
    if expected != 0 && expected != actual {
        return Err(crate::Error::VersionConflict {
            entity,
            id: id.to_owned(),
            expected,
        });
    }
    Ok(())
}

/// The caller's bearer token, passed on when a service calls another on
/// the caller's behalf, so the other service applies the caller's rights.
pub type Forwarded = Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>;

/// The bearer token `request` came with.
pub fn token_of<T>(request: &Request<T>) -> Forwarded {
    request.metadata().get("authorization").cloned()
}

/// A request to another service carrying the caller's token, the trace
/// context and a deadline.
pub fn on_behalf<T>(token: &Forwarded, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", token.clone());
    }
    request.set_timeout(std::time::Duration::from_secs(5));
    crate::telemetry::inject_traceparent(&mut request);
    request
}
