//! SQL of the sales service. Every function runs inside a caller's
//! tenant-scoped transaction (row-level security is the second fence).

pub mod forecasts;
pub mod leads;
pub mod opportunities;
pub mod pipelines;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Audit;
use uuid::Uuid;

pub fn audit(
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
) -> Option<Audit> {
    Some(Audit {
        created_at: Some(kit::time::to_timestamp(created_at)),
        created_by,
        updated_at: Some(kit::time::to_timestamp(updated_at)),
        updated_by,
        version,
    })
}

pub fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// An id that the domain layer already checked; empty is NULL.
pub fn checked_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}
