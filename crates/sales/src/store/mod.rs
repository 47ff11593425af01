//! SQL of the sales service. Every function runs inside a caller's
//! tenant-scoped transaction (row-level security is the second fence).

pub mod commerce;
pub mod forecasts;
pub mod leads;
pub mod opportunities;
pub mod pipelines;

use uuid::Uuid;

pub use kit::rpc::audit;

pub fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// An id that the domain layer already checked; empty is NULL.
pub fn checked_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}
