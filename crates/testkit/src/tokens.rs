//! Signs access tokens the way the gateway does, for tests.

use chrono::Utc;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kit::auth::{Claims, Role, Visibility};
use uuid::Uuid;

pub const ISSUER: &str = "crm-gateway";
pub const AUDIENCE: &str = "crm";

/// An Ed25519 key pair that signs test tokens.
pub struct TokenIssuer {
    kid: String,
    encoding: EncodingKey,
    public_pem: String,
    public_raw: [u8; 32],
}

impl TokenIssuer {
    pub fn new() -> Self {
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encode private key");
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encode public key");
        let encoding = EncodingKey::from_ed_pem(private_pem.as_bytes()).expect("ed25519 pem");
        Self {
            kid: Uuid::now_v7().to_string(),
            encoding,
            public_pem,
            public_raw: signing.verifying_key().to_bytes(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        use base64::Engine as _;
        serde_json::json!({
            "keys": [{
                "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
                "kid": self.kid,
                "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.public_raw),
            }]
        })
    }

    /// Claims valid for ten minutes.
    pub fn claims(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
    ) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            tid: tenant,
            roles: roles.to_vec(),
            teams: Vec::new(),
            scopes: Vec::new(),
            vis: visibility,
            exp: now + 600,
            iat: now,
            jti: Uuid::now_v7().to_string(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign token")
    }

    /// A valid token for an admin of `tenant`.
    pub fn admin_token(&self, tenant: Uuid) -> String {
        self.sign(&self.claims(tenant, Uuid::now_v7(), &[Role::Admin], Visibility::Tenant))
    }
}

impl Default for TokenIssuer {
    fn default() -> Self {
        Self::new()
    }
}
