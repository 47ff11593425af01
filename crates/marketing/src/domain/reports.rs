//! Delivery reports from the mail relay or the SMS provider: the signed
//! body, and which message each report is about.

use serde::Deserialize;

use super::links::LinkKey;

/// How far a report's timestamp may be from now, in seconds (replays of
/// an old, validly signed body are refused).
pub const TOLERANCE: i64 = 300;
/// Reports one body may carry.
pub const MAX_REPORTS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Delivered,
    Bounced,
    Complained,
    OptedOut,
}

#[derive(Debug, Deserialize)]
pub struct Report {
    pub reference: String,
    pub event: Event,
    /// Bounces: hard (the address does not exist) rather than soft.
    #[serde(default)]
    pub permanent: bool,
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    reports: Vec<Report>,
}

/// Why a body is not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unsigned, wrongly signed, or signed too long ago.
    Signature,
    /// Not a report list (the reason).
    Malformed(String),
}

/// The reports of a body whose signature holds and whose timestamp is
/// within [`TOLERANCE`] of `now`.
pub fn verified(
    key: &LinkKey,
    body: &[u8],
    timestamp: i64,
    signature: &str,
    now: i64,
) -> Result<Vec<Report>, Refusal> {
    if (now - timestamp).abs() > TOLERANCE || !key.verify_body(timestamp, body, signature) {
        return Err(Refusal::Signature);
    }
    let body: Body = serde_json::from_slice(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    if body.reports.len() > MAX_REPORTS {
        return Err(Refusal::Malformed(format!(
            "more than {MAX_REPORTS} reports"
        )));
    }
    Ok(body.reports)
}

pub use kit::events::message_reference as referenced;

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn only_fresh_signed_bodies_are_read() {
        let key = LinkKey::random();
        let (tenant, recipient) = (Uuid::now_v7(), Uuid::now_v7());
        let body = format!(
            r#"{{"reports": [{{"reference": "<{tenant}.{recipient}@news.example>", "event": "bounced", "permanent": true}}]}}"#
        );
        let signature = key.sign_body(1_000, body.as_bytes());
        let reports = verified(&key, body.as_bytes(), 1_000, &signature, 1_100).expect("fresh");
        assert_eq!(referenced(&reports[0].reference), Some((tenant, recipient)));
        assert!(reports[0].permanent);
        assert_eq!(
            verified(&key, body.as_bytes(), 1_000, &signature, 2_000).err(),
            Some(Refusal::Signature),
            "too old"
        );
        let altered = body.replace("bounced", "delivered");
        assert_eq!(
            verified(&key, altered.as_bytes(), 1_000, &signature, 1_000).err(),
            Some(Refusal::Signature)
        );
        assert_eq!(
            verified(
                &LinkKey::random(),
                body.as_bytes(),
                1_000,
                &signature,
                1_000
            )
            .err(),
            Some(Refusal::Signature)
        );
        let junk = key.sign_body(1_000, b"[]");
        assert!(matches!(
            verified(&key, b"[]", 1_000, &junk, 1_000),
            Err(Refusal::Malformed(_))
        ));
        assert_eq!(
            referenced(&format!("{tenant}.{recipient}")),
            Some((tenant, recipient))
        );
        assert_eq!(referenced("nonsense@example.com"), None);
    }
}
