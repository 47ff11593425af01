//! Signs access tokens the way the gateway does, for tests.

use chrono::Utc;
use kit::auth::{Claims, Role, TokenSigner, Visibility};
use uuid::Uuid;

pub const ISSUER: &str = "crm-gateway";
pub const AUDIENCE: &str = "crm";

/// An Ed25519 key pair that signs test tokens.
pub struct TokenIssuer {
    kid: String,
    signer: TokenSigner,
    private_pem: String,
    public_pem: String,
    public_raw: [u8; 32],
}

impl TokenIssuer {
    pub fn new() -> Self {
        let (private_pem, public_pem, public_raw) =
            kit::auth::generate_ed25519().expect("generate key");
        let kid = Uuid::now_v7().to_string();
        let signer = TokenSigner::from_pem(&private_pem, kid.clone()).expect("signer");
        Self {
            kid,
            signer,
            private_pem,
            public_pem,
            public_raw,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// Tokens `service` signs for itself with this issuer's key (the
    /// gateway's client-credentials grant, in process).
    pub fn service_tokens(&self, service: &str) -> kit::service_tokens::ServiceTokens {
        kit::service_tokens::ServiceTokens::Local {
            signer: TokenSigner::from_pem(&self.private_pem, self.kid.clone()).expect("signer"),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            service: service.into(),
        }
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
        self.signer.sign(claims).expect("sign token")
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
