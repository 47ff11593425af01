//! The gateway's token signing keys: the newest active key signs, every
//! published key verifies. Keys live in the database so all gateway pods
//! share them; each pod reloads them every minute, so a rotation reaches
//! every pod before tokens signed with the new key are common. The private
//! halves are sealed with the key-encryption key from the environment.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kit::auth::{CallerContext, TokenSigner, TokenVerifier};
use kit::db::Database;
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::sealing::KeyEncryptionKeys;
use crate::store::keys;

/// Retired keys stay published this long (longer than any access token).
const KEEP_RETIRED_SECONDS: i64 = 24 * 3600;

struct Keys {
    signer: TokenSigner,
    verifier: TokenVerifier,
    jwks: serde_json::Value,
}

#[derive(Clone)]
pub struct KeyRing {
    db: Database,
    sealing: KeyEncryptionKeys,
    issuer: String,
    audience: String,
    keys: Arc<RwLock<Arc<Keys>>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one when there is none.
    /// Keys stored in plaintext or sealed with the previous key-encryption
    /// key are sealed with the current one first.
    pub async fn load(
        db: Database,
        sealing: KeyEncryptionKeys,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        reseal(&db, &sealing).await?;
        let keys = Self::read(&db, &sealing, issuer, audience).await?;
        Ok(Self {
            db,
            sealing,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: Arc::new(RwLock::new(Arc::new(keys))),
        })
    }

    async fn read(
        db: &Database,
        sealing: &KeyEncryptionKeys,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Keys> {
        // One pod creates the first key; the others wait for it here.
        let mut tx = locked(db).await?;
        let mut published = keys::published(&mut tx, KEEP_RETIRED_SECONDS).await?;
        if !published.iter().any(|k| !k.retired) {
            let (private, _, public_raw) = kit::auth::generate_ed25519()?;
            let kid = Uuid::now_v7().to_string();
            let sealed = sealing.current.seal(&kid, private.as_bytes())?;
            keys::insert(
                &mut tx,
                &kid,
                &sealed,
                sealing.current.fingerprint(),
                &public_raw,
            )
            .await?;
            published = keys::published(&mut tx, KEEP_RETIRED_SECONDS).await?;
        }
        tx.commit().await?;
        let active = published
            .iter()
            .find(|k| !k.retired)
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let signer = TokenSigner::from_pem(&unseal(sealing, active)?, active.kid.clone())?;
        let public: Vec<(String, Vec<u8>)> = published
            .iter()
            .map(|k| (k.kid.clone(), k.public_raw.clone()))
            .collect();
        let verifier = TokenVerifier::from_ed25519_keys(&public, issuer, audience)?;
        let jwks = serde_json::json!({
            "keys": public.iter().map(|(kid, raw)| serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
            })).collect::<Vec<_>>()
        });
        Ok(Keys {
            signer,
            verifier,
            jwks,
        })
    }

    pub async fn reload(&self) -> anyhow::Result<()> {
        let fresh = Self::read(&self.db, &self.sealing, &self.issuer, &self.audience).await?;
        *self.keys.write().await = Arc::new(fresh);
        Ok(())
    }

    /// Retires the active key and creates a new one.
    pub async fn rotate(&self) -> anyhow::Result<()> {
        let mut tx = self.db.pool().begin().await?;
        keys::retire_all(&mut tx).await?;
        tx.commit().await?;
        self.reload().await
    }

    pub async fn sign(&self, claims: &kit::auth::Claims) -> anyhow::Result<String> {
        let keys = self.keys.read().await.clone();
        keys.signer.sign(claims)
    }

    pub async fn verify(&self, token: &str) -> Result<CallerContext, kit::Error> {
        let keys = self.keys.read().await.clone();
        keys.verifier.verify(token).await
    }

    pub async fn jwks(&self) -> serde_json::Value {
        self.keys.read().await.jwks.clone()
    }

    /// Reloads every minute until `shutdown`.
    pub async fn refresh_periodically(self, shutdown: kit::Shutdown) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = shutdown.cancelled() => return,
            }
            if let Err(error) = self.reload().await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "reloading signing keys failed"
                );
            }
        }
    }
}

/// The private key in PEM form, opened with the key-encryption key that
/// sealed it.
fn unseal(sealing: &KeyEncryptionKeys, key: &keys::StoredKey) -> anyhow::Result<String> {
    let (Some(sealed), Some(with)) = (&key.sealed_private, &key.sealed_with) else {
        return key
            .plaintext_pem
            .clone()
            .ok_or_else(|| anyhow::anyhow!("signing key {} has no private half", key.kid));
    };
    let opener = sealing.by_fingerprint(with).ok_or_else(|| {
        anyhow::anyhow!(
            "signing key {} is sealed with key-encryption key {with}, which is neither \
             GATEWAY_KEY_ENCRYPTION_KEY ({}) nor GATEWAY_PREVIOUS_KEY_ENCRYPTION_KEY",
            key.kid,
            sealing.current.fingerprint()
        )
    })?;
    let plain = opener
        .open(&key.kid, sealed)
        .map_err(|e| anyhow::anyhow!("signing key {}: {e}", key.kid))?;
    String::from_utf8(plain).map_err(|_| anyhow::anyhow!("signing key {} is not PEM", key.kid))
}

/// Seals every key not yet sealed with the current key-encryption key, in
/// one transaction under the keys' lock (pods starting together agree).
async fn reseal(db: &Database, sealing: &KeyEncryptionKeys) -> anyhow::Result<()> {
    let mut tx = locked(db).await?;
    let current = &sealing.current;
    for key in keys::not_sealed_with(&mut tx, current.fingerprint()).await? {
        let private = unseal(sealing, &key)?;
        let sealed = current.seal(&key.kid, private.as_bytes())?;
        keys::reseal(&mut tx, &key.kid, &sealed, current.fingerprint()).await?;
        tracing::info!(kid = %key.kid, "signing key sealed with the current key-encryption key");
    }
    tx.commit().await?;
    Ok(())
}

/// A transaction holding the signing keys' lock.
async fn locked(db: &Database) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = db.pool().begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7242002)")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
