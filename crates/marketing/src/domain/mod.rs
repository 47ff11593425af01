//! Rules of the marketing domain, without I/O: valid campaigns and their
//! status moves, how a member advances, whether a contact is reachable,
//! and who may do what.

pub mod access;
pub mod attribution;
pub mod automation;
pub mod campaign;
pub mod form;
pub mod journey;
pub mod links;
pub mod loyalty;
pub mod member;
pub mod reach;
pub mod reports;
pub mod template;

pub use kit::input::{optional_date, optional_id, parse_id, required_id, text};

/// An http(s) address without spaces, of at most 2,000 characters: what a
/// message's links and a form's redirect may point to.
pub fn is_web_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && url.len() <= 2000
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}
