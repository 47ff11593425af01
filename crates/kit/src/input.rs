//! Checks of client input shared by every service: ids, free text, plain
//! decimals, money and dates, each failing with the field's name.

use kit_error::FieldViolation;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::error as kit_error;

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
pub fn parse_id(field: &str, raw: &str) -> crate::Result<Uuid> {
    required_id(field, raw).map_err(|violation| crate::Error::InvalidArgument(vec![violation]))
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

/// A `Money` amount: a non-negative plain decimal with at most 10 fraction
/// digits and an upper-case ISO 4217 code. Reports `<field>.amount` and
/// `<field>.currency`; returns the normalised amount and currency.
pub fn money(
    field: &str,
    amount: &str,
    currency: &str,
    violations: &mut crate::error::Violations,
) -> Option<(Decimal, String)> {
    let currency = currency.trim().to_ascii_uppercase();
    let currency_ok = currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase());
    if !currency_ok {
        violations.add(
            format!("{field}.currency"),
            "must be a three-letter ISO 4217 code such as EUR",
        );
    }
    let parsed = match plain_decimal(amount.trim()) {
        Some(value) if value.is_sign_negative() => {
            violations.add(format!("{field}.amount"), "must not be negative");
            None
        }
        Some(value) if value.scale() > 10 => {
            violations.add(
                format!("{field}.amount"),
                "has more than 10 digits after the point",
            );
            None
        }
        Some(value) => Some(value.normalize()),
        None => {
            violations.add(
                format!("{field}.amount"),
                "must be a plain decimal such as 1234.50",
            );
            None
        }
    };
    match (parsed, currency_ok) {
        (Some(value), true) => Some((value, currency)),
        _ => None,
    }
}

/// A date `YYYY-MM-DD`; empty is `None`.
pub fn optional_date(field: &str, raw: &str) -> Result<Option<chrono::NaiveDate>, FieldViolation> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map(Some)
        .map_err(|_| FieldViolation::new(field, "must be a date YYYY-MM-DD"))
}
