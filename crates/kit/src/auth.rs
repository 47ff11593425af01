//! Zero trust between services: every gRPC call carries a bearer token that
//! this service verifies itself.
//!
//! Tokens are JWTs signed by the gateway's identity module with an asymmetric
//! key (EdDSA or ES256); public keys come from the gateway's JWKS endpoint or
//! a configured PEM key. [`AuthLayer`] verifies the token of each request and
//! puts the [`CallerContext`] into the request extensions; handlers read it
//! with [`caller`]. Health checks and reflection stay open, as probes and
//! tooling need them without credentials.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use uuid::Uuid;

use crate::config::{AuthConfig, KeySource};
use crate::error::Error;

/// Roles a user can hold; what each may do is decided per domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Manager,
    SalesRep,
    SupportAgent,
    Marketer,
    Viewer,
    /// Another CRM service acting on its own (event consumers, conversions).
    Service,
}

/// Which records a caller may see: its own, its teams', or the whole tenant's.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Own,
    Team,
    Tenant,
}

/// The claims of an access token, as issued by the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// User id, API key id, or `service:<name>`.
    pub sub: String,
    /// Tenant id.
    pub tid: Uuid,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub teams: Vec<Uuid>,
    /// API key scopes such as `customers:read`; empty for users, whose rights
    /// come from their roles.
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub vis: Visibility,
    pub exp: i64,
    pub iat: i64,
    #[serde(default)]
    pub jti: String,
}

/// Who is calling, on behalf of which tenant, with which rights.
#[derive(Clone, PartialEq, Eq)]
pub struct CallerContext {
    pub tenant_id: Uuid,
    /// Token subject, recorded as the actor of changes and events.
    pub subject: String,
    /// Set when the subject is a user.
    pub user_id: Option<Uuid>,
    pub roles: Vec<Role>,
    pub teams: Vec<Uuid>,
    pub scopes: Vec<String>,
    pub visibility: Visibility,
}

// Printed without team lists and scopes: enough to debug, small in logs.
impl fmt::Debug for CallerContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerContext")
            .field("tenant_id", &self.tenant_id)
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

impl CallerContext {
    pub fn from_claims(claims: Claims) -> Self {
        CallerContext {
            tenant_id: claims.tid,
            user_id: Uuid::parse_str(&claims.sub).ok(),
            subject: claims.sub,
            roles: claims.roles,
            teams: claims.teams,
            scopes: claims.scopes,
            visibility: claims.vis,
        }
    }

    /// The context a service uses when it acts by itself, e.g. applying an
    /// event of `tenant_id`.
    pub fn system(service: &str, tenant_id: Uuid) -> Self {
        CallerContext {
            tenant_id,
            subject: format!("system:{service}"),
            user_id: None,
            roles: vec![Role::Service],
            teams: Vec::new(),
            scopes: Vec::new(),
            visibility: Visibility::Tenant,
        }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// True when the token was scoped (API key) and the scope is missing.
    pub fn lacks_scope(&self, scope: &str) -> bool {
        !self.scopes.is_empty() && !self.scopes.iter().any(|s| s == scope)
    }
}

/// Reads the caller context put there by [`AuthLayer`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<CallerContext, tonic::Status> {
    request
        .extensions()
        .get::<CallerContext>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing caller context"))
}

struct VerificationKey {
    key: DecodingKey,
    algorithm: Algorithm,
}

enum KeyStore {
    Static(VerificationKey),
    /// Keys known up front by id (the gateway's own signing keys).
    Set(HashMap<String, Arc<VerificationKey>>),
    Jwks {
        url: String,
        client: reqwest::Client,
        cache: RwLock<JwksCache>,
        max_age: Duration,
    },
}

struct JwksCache {
    keys: HashMap<String, Arc<VerificationKey>>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<Instant>,
}

/// Fetches are at least this far apart, failed ones included, so forged
/// key ids or a down gateway cannot make every request refetch.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(10);
/// Keys are re-read this often, so a key the gateway no longer publishes
/// (retired, or removed after a leak) stops being accepted.
const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// While the gateway cannot be reached, cached keys are trusted for at
/// most this long; after that, tokens are refused as unavailable.
const JWKS_GRACE: Duration = Duration::from_secs(3600);

/// Verifies access tokens against the configured keys, issuer and audience.
pub struct TokenVerifier {
    keys: KeyStore,
    issuer: String,
    audience: String,
    verified: VerifiedTokens,
}

/// Seconds a token is still accepted past its `exp` (clock skew).
const LEEWAY_SECONDS: i64 = 30;

/// Tokens whose signature, issuer and audience were checked, by SHA-256 of
/// the whole token (a changed signature is another entry), with their
/// caller, key id and expiry. A request with a known token skips the
/// signature check (the costly part: once per token, not per hop and per
/// request) but not the expiry, nor the lookup of its key, so a token whose
/// key was retired is refused as before. Bounded: when full, expired
/// entries go, and if that is not enough, all of them.
struct VerifiedTokens {
    entries: std::sync::Mutex<HashMap<[u8; 32], VerifiedToken>>,
}

#[derive(Clone)]
struct VerifiedToken {
    caller: CallerContext,
    kid: Option<String>,
    exp: i64,
}

const VERIFIED_CAPACITY: usize = 10_000;

impl VerifiedTokens {
    fn new() -> Self {
        Self {
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], VerifiedToken>> {
        // A panic while holding the lock leaves a usable map.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The entry of `token` if it has not expired at `now` (Unix seconds).
    fn get(&self, token: &str, now: i64) -> Option<VerifiedToken> {
        let digest = Self::digest(token);
        let mut entries = self.lock();
        match entries.get(&digest) {
            Some(entry) if now <= entry.exp + LEEWAY_SECONDS => Some(entry.clone()),
            Some(_) => {
                entries.remove(&digest);
                None
            }
            None => None,
        }
    }

    fn insert(&self, token: &str, entry: VerifiedToken, now: i64) {
        let mut entries = self.lock();
        if entries.len() >= VERIFIED_CAPACITY {
            entries.retain(|_, e| now <= e.exp + LEEWAY_SECONDS);
            if entries.len() >= VERIFIED_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(Self::digest(token), entry);
    }
}

fn unix_now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

impl TokenVerifier {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let keys = match &config.keys {
            KeySource::PublicKeyPem(pem) => KeyStore::Static(key_from_pem(pem)?),
            KeySource::JwksUrl(url) => KeyStore::Jwks {
                url: url.clone(),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()?,
                cache: RwLock::new(JwksCache {
                    keys: HashMap::new(),
                    fetched_at: None,
                    tried_at: None,
                }),
                max_age: JWKS_MAX_AGE,
            },
        };
        Ok(Self {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            verified: VerifiedTokens::new(),
        })
    }

    /// A verifier for Ed25519 public keys given by key id and raw bytes.
    pub fn from_ed25519_keys(
        keys: &[(String, Vec<u8>)],
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let mut set = HashMap::new();
        for (kid, raw) in keys {
            let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
            let key = DecodingKey::from_ed_components(&x)?;
            set.insert(
                kid.clone(),
                Arc::new(VerificationKey {
                    key,
                    algorithm: Algorithm::EdDSA,
                }),
            );
        }
        Ok(Self {
            keys: KeyStore::Set(set),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            verified: VerifiedTokens::new(),
        })
    }

    /// Verifies signature, expiry, issuer and audience; returns the caller.
    pub async fn verify(&self, token: &str) -> Result<CallerContext, Error> {
        let now = unix_now();
        if let Some(known) = self.verified.get(token, now) {
            // Its key must still be one we accept (rotation, removal).
            self.key_for(known.kid.as_deref()).await?;
            return Ok(known.caller);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Error::Unauthenticated("malformed bearer token".into()))?;
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::ES256) {
            return Err(Error::Unauthenticated(
                "token algorithm not accepted".into(),
            ));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        if key.algorithm != header.alg {
            return Err(Error::Unauthenticated(
                "token algorithm does not match its key".into(),
            ));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS as u64;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                let reason = match error.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidAudience => "token audience not accepted",
                    ErrorKind::InvalidIssuer => "token issuer not accepted",
                    ErrorKind::InvalidSignature => "token signature invalid",
                    _ => "token invalid",
                };
                Error::Unauthenticated(reason.into())
            })?;
        let exp = data.claims.exp;
        let caller = CallerContext::from_claims(data.claims);
        self.verified.insert(
            token,
            VerifiedToken {
                caller: caller.clone(),
                kid: header.kid,
                exp,
            },
            now,
        );
        Ok(caller)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<VerificationKey>, Error> {
        match &self.keys {
            KeyStore::Static(key) => Ok(Arc::new(VerificationKey {
                key: key.key.clone(),
                algorithm: key.algorithm,
            })),
            KeyStore::Set(keys) => kid
                .and_then(|kid| keys.get(kid))
                .cloned()
                .ok_or_else(|| Error::Unauthenticated("token signed by an unknown key".into())),
            KeyStore::Jwks {
                url,
                client,
                cache,
                max_age,
            } => {
                let kid =
                    kid.ok_or_else(|| Error::Unauthenticated("token has no key id".into()))?;
                let fresh =
                    |cache: &JwksCache| cache.fetched_at.is_some_and(|at| at.elapsed() < *max_age);
                {
                    let cache = cache.read().await;
                    if fresh(&cache) {
                        if let Some(key) = cache.keys.get(kid) {
                            return Ok(key.clone());
                        }
                    }
                }
                let mut cache = cache.write().await;
                let gap = JWKS_MIN_REFRESH.min(*max_age);
                let may_try = cache.tried_at.is_none_or(|at| at.elapsed() >= gap);
                if may_try && !(fresh(&cache) && cache.keys.contains_key(kid)) {
                    cache.tried_at = Some(Instant::now());
                    match fetch_jwks(client, url).await {
                        Ok(keys) => {
                            // Replaced whole: unpublished keys are gone.
                            cache.keys = keys;
                            cache.fetched_at = Some(Instant::now());
                        }
                        Err(error) => {
                            tracing::warn!(%url, error = %error, "fetching jwks failed");
                        }
                    }
                }
                let usable = cache
                    .fetched_at
                    .is_some_and(|at| at.elapsed() < *max_age + JWKS_GRACE);
                if !usable {
                    return Err(Error::Unavailable("signing keys unavailable".into()));
                }
                cache
                    .keys
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| Error::Unauthenticated("token signed by an unknown key".into()))
            }
        }
    }

    /// Re-reads a JWKS after `max_age` instead of five minutes (tests).
    pub fn with_jwks_max_age(mut self, age: Duration) -> Self {
        if let KeyStore::Jwks { max_age, .. } = &mut self.keys {
            *max_age = age;
        }
        self
    }
}

fn key_from_pem(pem: &str) -> anyhow::Result<VerificationKey> {
    let pem = pem.replace("\\n", "\n");
    if let Ok(key) = DecodingKey::from_ed_pem(pem.as_bytes()) {
        return Ok(VerificationKey {
            key,
            algorithm: Algorithm::EdDSA,
        });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
        return Ok(VerificationKey {
            key,
            algorithm: Algorithm::ES256,
        });
    }
    anyhow::bail!("CRM_JWT_PUBLIC_KEY is not an Ed25519 or P-256 public key in PEM form")
}

async fn fetch_jwks(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<HashMap<String, Arc<VerificationKey>>> {
    let set: JwkSet = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            _ => continue, // symmetric and RSA keys are not accepted here
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, Arc::new(VerificationKey { key, algorithm }));
        }
    }
    Ok(keys)
}

/// Paths served without a token: health checks and reflection.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Tower layer that authenticates every gRPC request.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<TokenVerifier>,
}

impl AuthLayer {
    pub fn new(verifier: Arc<TokenVerifier>) -> Self {
        Self { verifier }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<TokenVerifier>,
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The service that was polled ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_public(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| {
                    value
                        .strip_prefix("Bearer ")
                        .or_else(|| value.strip_prefix("bearer "))
                })
                .map(str::to_owned);
            let verified = match token {
                None => Err(Error::Unauthenticated("missing bearer token".into())),
                Some(token) => verifier.verify(&token).await,
            };
            match verified {
                Ok(context) => {
                    request.extensions_mut().insert(context);
                    inner.call(request).await
                }
                Err(error) => Ok(tonic::Status::from(error).into_http()),
            }
        })
    }
}

/// Signs access tokens with an Ed25519 key (PKCS#8 PEM). The gateway's
/// identity module issues tokens with it; the `crm` CLI mints development
/// tokens with it before a gateway runs.
pub struct TokenSigner {
    key: jsonwebtoken::EncodingKey,
    kid: String,
}

impl TokenSigner {
    pub fn from_pem(private_pem: &str, kid: impl Into<String>) -> anyhow::Result<Self> {
        let key = jsonwebtoken::EncodingKey::from_ed_pem(private_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("not an Ed25519 private key in PKCS#8 PEM form: {e}"))?;
        Ok(Self {
            key,
            kid: kid.into(),
        })
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// A new Ed25519 key pair as (private PKCS#8 PEM, public SPKI PEM, raw public key).
pub fn generate_ed25519() -> anyhow::Result<(String, String, [u8; 32])> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
    let private = signing
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("encoding key: {e}"))?;
    Ok((
        private.to_string(),
        public,
        signing.verifying_key().to_bytes(),
    ))
}

/// Client side: adds `authorization: Bearer <token>` to every gRPC call made
/// through a client built with `with_interceptor`.
#[derive(Clone)]
pub struct BearerToken(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    /// Fails if the token holds characters a header cannot carry.
    pub fn new(token: &str) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        format!("Bearer {token}").parse().map(Self)
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(exp: i64) -> VerifiedToken {
        VerifiedToken {
            caller: CallerContext::system("test", Uuid::now_v7()),
            kid: None,
            exp,
        }
    }

    #[test]
    fn remembered_tokens_expire_with_their_leeway() {
        let cache = VerifiedTokens::new();
        cache.insert("token", entry(1_000), 900);
        assert!(cache.get("token", 1_000 + LEEWAY_SECONDS).is_some());
        assert!(cache.get("token", 1_001 + LEEWAY_SECONDS).is_none());
        // Gone once seen expired.
        assert!(cache.get("token", 900).is_none());
        assert!(cache.get("other", 900).is_none());
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first() {
        let cache = VerifiedTokens::new();
        for i in 0..VERIFIED_CAPACITY {
            // Half of them expired by `now` = 2_000.
            let exp = if i % 2 == 0 { 100 } else { 5_000 };
            cache.insert(&format!("t{i}"), entry(exp), 0);
        }
        cache.insert("new", entry(5_000), 2_000);
        assert_eq!(cache.lock().len(), VERIFIED_CAPACITY / 2 + 1);
        assert!(cache.get("t1", 2_000).is_some());
        assert!(cache.get("new", 2_000).is_some());
    }
}
