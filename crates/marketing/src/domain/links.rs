//! Signed links in messages: the open pixel, tracked links and the
//! unsubscribe link. A token is `<tenant>.<payload>.<signature>`: the
//! payload is base64url JSON, the signature its HMAC-SHA256 under the
//! service's link key, so nobody can forge, alter or extend one, and an
//! id alone is never enough.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
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

/// The key links are signed with (`MARKETING_LINK_KEY`).
#[derive(Clone)]
pub struct LinkKey(Vec<u8>);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(<secret>)")
    }
}

impl LinkKey {
    /// From base64 (at least 32 bytes).
    pub fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| "is not base64".to_owned())?;
        if bytes.len() < 32 {
            return Err("must hold at least 32 bytes".into());
        }
        Ok(LinkKey(bytes))
    }

    /// A random key (tests).
    pub fn random() -> Self {
        LinkKey((0..4).flat_map(|_| Uuid::new_v4().into_bytes()).collect())
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        self.mac_bytes(signed.as_bytes())
    }

    fn mac_bytes(&self, signed: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        mac.update(signed);
        mac
    }

    /// `sha256=<hex HMAC-SHA256>` of `<timestamp>.<body>`: how a delivery
    /// report webhook is signed.
    pub fn sign_body(&self, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac_bytes(format!("{timestamp}.").as_bytes());
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Whether `signature` is [`Self::sign_body`]'s, compared in constant time.
    pub fn verify_body(&self, timestamp: i64, body: &[u8], signature: &str) -> bool {
        let Some(bytes) = signature
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
        else {
            return false;
        };
        let mut mac = self.mac_bytes(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&bytes).is_ok()
    }

    pub fn sign(&self, link: &Link) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(link).unwrap_or_default());
        let signed = format!("{}.{payload}", link.tenant.simple());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// The link a token carries, if the signature holds, the tenant in
    /// clear matches the signed one and it has not expired.
    pub fn verify(&self, token: &str, now: i64) -> Option<Link> {
        if token.len() > 4096 {
            return None;
        }
        let (signed, signature) = token.rsplit_once('.')?;
        let (tenant, payload) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(signed).verify_slice(&signature).ok()?;
        let link: Link = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (link.tenant.simple().to_string() == tenant && link.expires >= now).then_some(link)
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
        assert_eq!(key.verify(&token, 999), Some(original.clone()));
        assert_eq!(key.verify(&token, 1_001), None, "expired");
        assert_eq!(LinkKey::random().verify(&token, 0), None, "another key");
        // Another link's payload under this link's signature.
        let mut other = original.clone();
        other.url = "https://evil.example".into();
        let other_token = key.sign(&other);
        let (other_signed, _) = other_token.rsplit_once('.').expect("signed part");
        let (_, signature) = token.rsplit_once('.').expect("signature");
        assert_eq!(key.verify(&format!("{other_signed}.{signature}"), 0), None);
        let other_tenant = format!("{}{}", Uuid::now_v7().simple(), &token[32..]);
        assert_eq!(
            key.verify(&other_tenant, 0),
            None,
            "tenant in clear altered"
        );
        assert_eq!(key.verify("garbage", 0), None);
    }
}
