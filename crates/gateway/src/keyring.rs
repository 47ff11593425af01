//! The gateway's token signing keys: the newest active key signs, every
//! published key verifies. Keys live in the database so all gateway pods
//! share them; each pod reloads them every minute, so a rotation reaches
//! every pod before tokens signed with the new key are common.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use kit::auth::{CallerContext, TokenSigner, TokenVerifier};
use kit::db::Database;
use tokio::sync::RwLock;
use uuid::Uuid;

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
    issuer: String,
    audience: String,
    keys: Arc<RwLock<Arc<Keys>>>,
}

impl KeyRing {
    /// Loads the keys, creating the first one when there is none.
    pub async fn load(db: Database, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let keys = Self::read(&db, issuer, audience).await?;
        Ok(Self {
            db,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys: Arc::new(RwLock::new(Arc::new(keys))),
        })
    }

    async fn read(db: &Database, issuer: &str, audience: &str) -> anyhow::Result<Keys> {
        let mut tx = db.pool().begin().await?;
        // One pod creates the first key; the others wait for it here.
        sqlx::query("SELECT pg_advisory_xact_lock(7242002)")
            .execute(&mut *tx)
            .await?;
        let mut published = keys::published(&mut tx, KEEP_RETIRED_SECONDS).await?;
        if !published.iter().any(|k| !k.retired) {
            let (private, _, public_raw) = kit::auth::generate_ed25519()?;
            let kid = Uuid::now_v7().to_string();
            keys::insert(&mut tx, &kid, &private, &public_raw).await?;
            published = keys::published(&mut tx, KEEP_RETIRED_SECONDS).await?;
        }
        tx.commit().await?;
        let active = published
            .iter()
            .find(|k| !k.retired)
            .ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        let signer = TokenSigner::from_pem(&active.private_pem, active.kid.clone())?;
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
        let fresh = Self::read(&self.db, &self.issuer, &self.audience).await?;
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
