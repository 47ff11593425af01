//! Encryption at rest of the token signing keys (AES-256-GCM).
//!
//! The private keys live in the gateway's database so every pod shares them;
//! a copy of that database (a backup, a replica, a leaked dump) must not be
//! enough to mint tokens. Each key is sealed with a key-encryption key that
//! only the gateway's environment holds (`GATEWAY_KEY_ENCRYPTION_KEY`, a
//! Kubernetes Secret in production). The key's id is the associated data,
//! so a sealed key moved to another row does not open.
//!
//! Changing the key-encryption key: set the new one as
//! `GATEWAY_KEY_ENCRYPTION_KEY` and the old one as
//! `GATEWAY_PREVIOUS_KEY_ENCRYPTION_KEY`; the gateway re-seals every key on
//! start, after which the previous key can be dropped.

use std::fmt;

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::Digest as _;

/// One 256-bit key-encryption key, known by a short fingerprint (stored
/// beside every sealed key, so the gateway knows which key opens it).
#[derive(Clone)]
pub struct KeyEncryptionKey {
    raw: [u8; 32],
    fingerprint: String,
}

impl KeyEncryptionKey {
    /// Parses the base64 form (`openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64".to_owned())?;
        let raw: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("is {} bytes; it must be 32", b.len()))?;
        Ok(Self::from_bytes(raw))
    }

    pub fn from_bytes(raw: [u8; 32]) -> Self {
        let digest = sha2::Sha256::digest(raw);
        Self {
            raw,
            fingerprint: hex::encode(&digest[..8]),
        }
    }

    /// A fresh random key (tests and benchmarks).
    pub fn generate() -> Self {
        let mut raw = [0u8; 32];
        // The system generator fails only where no randomness exists at all.
        SystemRandom::new()
            .fill(&mut raw)
            .expect("the system random number generator works");
        Self::from_bytes(raw)
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.raw).expect("32 bytes is an AES-256 key"),
        )
    }

    /// `nonce || ciphertext || tag`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut sealed = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            anyhow::bail!("the sealed value is too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("the sealed value has no nonce"))?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| anyhow::anyhow!("the sealed value does not open with this key"))?;
        Ok(plain.to_vec())
    }
}

/// The key material never reaches logs: only its fingerprint.
impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyEncryptionKey({})", self.fingerprint)
    }
}

/// The current key, which seals, and the previous one while keys are
/// re-sealed after a change.
#[derive(Debug, Clone)]
pub struct KeyEncryptionKeys {
    pub current: KeyEncryptionKey,
    pub previous: Option<KeyEncryptionKey>,
}

impl KeyEncryptionKeys {
    pub fn only(current: KeyEncryptionKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// The key whose fingerprint is `fingerprint`, if the gateway holds it.
    pub fn by_fingerprint(&self, fingerprint: &str) -> Option<&KeyEncryptionKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.fingerprint == fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = KeyEncryptionKey::generate();
        let sealed = key.seal("kid-1", b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("kid-1", &sealed).unwrap(), b"secret");
        assert!(key.open("kid-2", &sealed).is_err());
        assert!(KeyEncryptionKey::generate().open("kid-1", &sealed).is_err());
        assert!(key.open("kid-1", &sealed[..8]).is_err());
    }

    #[test]
    fn keys_parse_from_32_bytes_of_base64_and_print_masked() {
        let text = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let key = KeyEncryptionKey::from_base64(&text).unwrap();
        assert_eq!(key.fingerprint().len(), 16);
        assert!(!format!("{key:?}").contains(&text));
        assert_eq!(
            KeyEncryptionKey::from_base64("AAAA").unwrap_err(),
            "is 3 bytes; it must be 32"
        );
        assert_eq!(
            KeyEncryptionKey::from_base64("not base64!").unwrap_err(),
            "is not base64"
        );
    }
}
