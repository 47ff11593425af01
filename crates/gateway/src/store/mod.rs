//! SQL of the gateway's identity database.

pub mod api_keys;
pub mod audit;
pub mod identity;
pub mod keys;
pub mod refresh_tokens;
pub mod webhooks;
