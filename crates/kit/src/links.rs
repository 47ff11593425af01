//! Signed public links (tracking and unsubscribe links, satisfaction
//! surveys): a token is `<tenant>.<payload>.<signature>`, the payload
//! base64url JSON of the link's claims, the signature its HMAC-SHA256
//! under the service's link key, so nobody can forge, alter or extend one,
//! and an id alone is never enough. The gateway routes a token by the
//! tenant in clear; the service that signed it alone verifies it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

/// What a signed link carries: its claims, with the tenant and an expiry.
pub trait SignedLink: Serialize + DeserializeOwned {
    fn tenant(&self) -> Uuid;
    /// Unix seconds after which the link is dead.
    fn expires(&self) -> i64;
}

/// The key a service signs its public links with (`<SERVICE>_LINK_KEY`).
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

    /// A secret another party holds, used as given (its UTF-8 bytes).
    pub fn from_secret(secret: &str) -> Self {
        LinkKey(secret.as_bytes().to_vec())
    }

    /// A secret of its own for `label`, derived from this key (hex of
    /// HMAC-SHA256 of the label): per-record secrets that are never stored
    /// and change with the label.
    pub fn derive(&self, label: &str) -> String {
        hex::encode(self.mac(label).finalize().into_bytes())
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

    pub fn sign<L: SignedLink>(&self, link: &L) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(link).unwrap_or_default());
        let signed = format!("{}.{payload}", link.tenant().simple());
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{signed}.{signature}")
    }

    /// The link a token carries, if the signature holds, the tenant in
    /// clear matches the signed one and it has not expired.
    pub fn verify<L: SignedLink>(&self, token: &str, now: i64) -> Option<L> {
        if token.len() > 4096 {
            return None;
        }
        let (signed, signature) = token.rsplit_once('.')?;
        let (tenant, payload) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(signed).verify_slice(&signature).ok()?;
        let link: L = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (link.tenant().simple().to_string() == tenant && link.expires() >= now).then_some(link)
    }
}
