//! Rules of the customers domain, without I/O: what a valid contact, account,
//! custom field value or filter is, and who may do what.
//!
//! The protobuf messages are the data carriers; functions here normalise
//! them in place (lower-case e-mails, E.164 phones, trimmed names) and report
//! every violated field at once, named by its path in the request.

pub mod access;
pub mod account;
pub mod contact;
pub mod contact_point;
pub mod custom_fields;
pub mod filter;
pub mod lifecycle;
pub mod tags;
pub mod transfer;

pub use kit::input::{optional_id, parse_id, plain_decimal, required_id, text};
