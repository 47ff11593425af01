//! Signed links in messages: the open pixel, tracked links and the
//! unsubscribe link, signed with the service's link key
//! (`MARKETING_LINK_KEY`) as [`kit::links`] signs every public link.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    #[serde(rename = "o")]
    Open,
    #[serde(rename = "c")]
    Click,
    #[serde(rename = "u")]
    Unsubscribe,
}

/// The signed content of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "t")]
    pub tenant: Uuid,
    #[serde(rename = "r")]
    pub recipient: Uuid,
    #[serde(rename = "k")]
    pub kind: Kind,
    /// Where a click goes.
    #[serde(rename = "u", default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Unix seconds after which the link is dead.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// How long links work: unsubscribe links for a year (old messages must
/// still let people leave), tracking links for 90 days.
pub fn lifetime(kind: Kind) -> chrono::Duration {
    match kind {
        Kind::Unsubscribe => chrono::Duration::days(365),
        _ => chrono::Duration::days(90),
    }
}

pub use kit::links::LinkKey;

impl kit::links::SignedLink for Link {
    fn tenant(&self) -> Uuid {
        self.tenant
    }

    fn expires(&self) -> i64 {
        self.expires
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: Kind) -> Link {
        Link {
            tenant: Uuid::now_v7(),
            recipient: Uuid::now_v7(),
            kind,
            url: "https://example.com/offer?a=1".into(),
            expires: 1_000,
        }
    }

    #[test]
    fn only_untouched_unexpired_links_verify() {
        let key = LinkKey::random();
        let original = link(Kind::Click);
        let token = key.sign(&original);
        assert_eq!(key.verify::<Link>(&token, 999), Some(original.clone()));
        assert_eq!(key.verify::<Link>(&token, 1_001), None, "expired");
        assert_eq!(
            LinkKey::random().verify::<Link>(&token, 0),
            None,
            "another key"
        );
        // Another link's payload under this link's signature.
        let mut other = original.clone();
        other.url = "https://evil.example".into();
        let other_token = key.sign(&other);
        let (other_signed, _) = other_token.rsplit_once('.').expect("signed part");
        let (_, signature) = token.rsplit_once('.').expect("signature");
        assert_eq!(
            key.verify::<Link>(&format!("{other_signed}.{signature}"), 0),
            None
        );
        let other_tenant = format!("{}{}", Uuid::now_v7().simple(), &token[32..]);
        assert_eq!(
            key.verify::<Link>(&other_tenant, 0),
            None,
            "tenant in clear altered"
        );
        assert_eq!(key.verify::<Link>("garbage", 0), None);
    }
}
