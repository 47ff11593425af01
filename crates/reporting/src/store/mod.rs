//! SQL of the reporting service: the read models, written by the
//! projections and read by the dashboards, inside tenant-scoped
//! transactions (row-level security is the second fence).

pub mod freshness;
pub mod tickets;
