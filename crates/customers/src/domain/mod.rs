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

use kit::error::FieldViolation;
use uuid::Uuid;

/// Parses an id sent by a client; empty is `None`.
pub fn optional_id(field: &str, raw: &str) -> Result<Option<Uuid>, FieldViolation> {
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw)
        .map(Some)
        .map_err(|_| FieldViolation::new(field, "is not a valid id (UUID)"))
}

/// Parses a required id.
pub fn required_id(field: &str, raw: &str) -> Result<Uuid, FieldViolation> {
    optional_id(field, raw)?.ok_or_else(|| FieldViolation::new(field, "is required"))
}

/// Parses a required id, as a ready error.
pub fn parse_id(field: &str, raw: &str) -> kit::Result<Uuid> {
    required_id(field, raw).map_err(|violation| kit::Error::InvalidArgument(vec![violation]))
}

/// Trims and bounds a free-text field.
pub fn text(field: &str, value: &mut String, max_chars: usize) -> Result<(), FieldViolation> {
    let trimmed = value.trim();
    if trimmed.len() != value.len() {
        *value = trimmed.to_owned();
    }
    if value.chars().count() > max_chars {
        return Err(FieldViolation::new(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldViolation::new(field, "contains control characters"));
    }
    Ok(())
}

/// Parses a plain decimal string ("1234.50", "-3"); exponents, spaces and
/// thousands separators are refused so no amount is ever guessed.
pub fn plain_decimal(raw: &str) -> Option<rust_decimal::Decimal> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let plain = !whole.is_empty()
        && !fraction.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.chars().all(|c| c.is_ascii_digit());
    if plain {
        raw.parse().ok()
    } else {
        None
    }
}
