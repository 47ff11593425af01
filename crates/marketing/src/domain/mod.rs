//! Rules of the marketing domain, without I/O: valid campaigns and their
//! status moves, how a member advances, whether a contact is reachable,
//! and who may do what.

pub mod access;
pub mod attribution;
pub mod campaign;
pub mod links;
pub mod member;
pub mod reach;
pub mod template;

pub use kit::input::{optional_date, optional_id, parse_id, required_id, text};
