//! Rules of the sales domain, without I/O: valid leads and opportunities,
//! routing and scoring decisions, line-item arithmetic, and who may do what.

pub mod access;
pub mod lead;
pub mod opportunity;
pub mod quote;
pub mod routing;
pub mod scoring;

pub use kit::input::{optional_date, optional_id, parse_id, required_id, text};
