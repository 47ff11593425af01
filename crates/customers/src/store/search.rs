//! Search over contacts and accounts: the shared trigram search of
//! `kit::search` over this service's `search_index` (ADR 0008).

pub use kit::search::{search, Hit};
