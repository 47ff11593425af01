//! SQL of the service desk. Every function runs inside a caller's (or an
//! event's) tenant-scoped transaction; row-level security is the second
//! fence.

pub mod knowledge;
pub mod routing;
pub mod slas;
pub mod tickets;

use uuid::Uuid;

pub use kit::rpc::audit;

pub fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// An id the domain checks already passed; empty is none.
pub fn checked_id(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}
