//! SQL of the gateway's identity database.

pub mod audit;
pub mod idempotency;
pub mod identity;
pub mod keys;
pub mod refresh_tokens;
