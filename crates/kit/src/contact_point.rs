//! E-mail addresses and phone numbers: parsed once into types that cannot
//! hold an invalid value, normalised so duplicates compare equal, and
//! printed masked.

use std::fmt;

use crm_proto::pii::{mask_email, mask_phone};

/// A syntactically valid e-mail address, lower case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err("is empty");
        }
        if value.len() > 254 {
            return Err("is longer than 254 characters");
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err("is not an e-mail address (no @)");
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
        if !(domain_ok && local_ok) {
            return Err("is not an e-mail address");
        }
        Ok(Email(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", mask_email(&self.0))
    }
}

/// A phone number in E.164 form: `+` then 8 to 15 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Accepts common separators (spaces, dashes, dots, parentheses) and a
    /// `00` international prefix; a number without country code is refused
    /// rather than guessed.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let compact: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
            .collect();
        let digits = if let Some(rest) = compact.strip_prefix('+') {
            rest
        } else if let Some(rest) = compact.strip_prefix("00") {
            rest
        } else {
            return Err("is not in international form (+<country code><number>)");
        };
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err("contains characters other than digits");
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err("is not a valid E.164 number (8 to 15 digits, no leading 0)");
        }
        Ok(PhoneE164(format!("+{digits}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PhoneE164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneE164({})", mask_phone(&self.0))
    }
}

/// A web domain: lower case, without scheme, path or `www.`.
pub fn normalize_domain(raw: &str) -> Result<String, &'static str> {
    let mut value = raw.trim().to_lowercase();
    for scheme in ["https://", "http://"] {
        if let Some(rest) = value.strip_prefix(scheme) {
            value = rest.to_owned();
        }
    }
    let value = value
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("")
        .trim_start_matches("www.")
        .to_owned();
    if value.is_empty() {
        return Ok(value);
    }
    let valid = value.contains('.')
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if valid {
        Ok(value)
    } else {
        Err("is not a domain name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("  Ada.Lovelace@Example.COM ")
                .unwrap()
                .as_str(),
            "ada.lovelace@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a da@example.com",
            "ada@exa..mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            format!("{:?}", Email::parse("ada@example.com").unwrap()),
            "Email(a***@example.com)"
        );
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            PhoneE164::parse("+49 (151) 123-456.78").unwrap().as_str(),
            "+4915112345678"
        );
        assert_eq!(
            PhoneE164::parse("0086 138 0013 8000").unwrap().as_str(),
            "+8613800138000"
        );
        for bad in ["0151 1234567", "+12", "+49 151 abc", "+0123456789"] {
            assert!(PhoneE164::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn domains_lose_scheme_path_and_www() {
        assert_eq!(
            normalize_domain("https://www.Example.com/about").unwrap(),
            "example.com"
        );
        assert!(normalize_domain("not a domain").is_err());
    }
}
