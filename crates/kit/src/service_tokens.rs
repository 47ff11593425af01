//! Tokens a service uses when it acts by itself towards another service
//! (automation rules, journeys), where no user's token is at hand. Only the
//! gateway signs tokens (principle 4), so a service obtains them there by
//! the OAuth 2.0 client-credentials grant (RFC 6749 section 4.4): it posts
//! its own secret and the tenant to `/v1/auth/service-token` and gets a
//! short-lived token of subject `service:<name>` with the `service` role,
//! which every service verifies like any other. Tokens are cached per
//! tenant until shortly before they expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::auth::{Claims, Role, TokenSigner, Visibility};
use crate::error::Error;
use crate::rpc::Forwarded;

/// A token is renewed this long before it expires.
const MARGIN: Duration = Duration::from_secs(30);

#[derive(Default)]
pub enum ServiceTokens {
    /// The client-credentials grant at the gateway.
    Gateway {
        url: String,
        secret: String,
        http: reqwest::Client,
        cache: Mutex<HashMap<Uuid, (Forwarded, Instant)>>,
    },
    /// Signed in process with the platform's key: tests and development
    /// tools that hold the key anyway.
    Local {
        signer: TokenSigner,
        issuer: String,
        audience: String,
        service: String,
    },
    /// Not configured: acting as the service is refused with a message
    /// naming the settings.
    #[default]
    Missing,
}

#[derive(Deserialize)]
struct Granted {
    access_token: String,
    expires_in: u64,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway { url, .. } => write!(f, "ServiceTokens::Gateway({url})"),
            Self::Local { service, .. } => write!(f, "ServiceTokens::Local({service})"),
            Self::Missing => write!(f, "ServiceTokens::Missing"),
        }
    }
}

impl ServiceTokens {
    /// The grant at `url` (the gateway's `/v1/auth/service-token`) with the
    /// service's `secret`.
    pub fn gateway(url: String, secret: String) -> Self {
        Self::Gateway {
            url,
            secret,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A token to call other services as this service in `tenant`.
    pub async fn for_tenant(&self, tenant: Uuid) -> crate::Result<Forwarded> {
        match self {
            Self::Missing => Err(Error::FailedPrecondition(
                "this service has no credentials to act by itself: set CRM_SERVICE_TOKEN_URL and CRM_SERVICE_SECRET".into(),
            )),
            Self::Local {
                signer,
                issuer,
                audience,
                service,
            } => {
                let now = chrono::Utc::now().timestamp();
                let claims = Claims {
                    iss: issuer.clone(),
                    aud: audience.clone(),
                    sub: format!("service:{service}"),
                    tid: tenant,
                    roles: vec![Role::Service],
                    teams: Vec::new(),
                    scopes: Vec::new(),
                    vis: Visibility::Tenant,
                    exp: now + 300,
                    iat: now,
                    jti: Uuid::now_v7().to_string(),
                };
                let token = signer
                    .sign(&claims)
                    .map_err(|e| Error::Internal(e.context("signing a service token")))?;
                bearer(&token)
            }
            Self::Gateway {
                url,
                secret,
                http,
                cache,
            } => {
                let mut cache = cache.lock().await;
                if let Some((token, until)) = cache.get(&tenant) {
                    if Instant::now() < *until {
                        return Ok(token.clone());
                    }
                }
                let answer = http
                    .post(url)
                    .bearer_auth(secret)
                    .json(&serde_json::json!({ "tenant_id": tenant }))
                    .send()
                    .await
                    .map_err(|e| Error::Unavailable(format!("the gateway's token grant did not answer: {e}")))?;
                let status = answer.status();
                if !status.is_success() {
                    return Err(Error::Unavailable(format!(
                        "the gateway refused this service a token ({status}): check CRM_SERVICE_SECRET"
                    )));
                }
                let granted: Granted = answer
                    .json()
                    .await
                    .map_err(|e| Error::Unavailable(format!("the gateway's token grant answered badly: {e}")))?;
                let token = bearer(&granted.access_token)?;
                let lifetime = Duration::from_secs(granted.expires_in).saturating_sub(MARGIN);
                cache.insert(tenant, (token.clone(), Instant::now() + lifetime));
                Ok(token)
            }
        }
    }
}

fn bearer(token: &str) -> crate::Result<Forwarded> {
    format!("Bearer {token}")
        .parse()
        .map(Some)
        .map_err(|_| Error::Internal(anyhow::anyhow!("a token that no header can carry")))
}

impl ServiceTokens {
    /// `CRM_SERVICE_TOKEN_URL` (the gateway's `/v1/auth/service-token`)
    /// and `CRM_SERVICE_SECRET` (or `<SERVICE>_...`, or `..._FILE`): both,
    /// or neither for a service that never acts by itself.
    pub fn parse(env: &mut crate::config::Env) -> Self {
        let url: Option<String> = env.optional("CRM_SERVICE_TOKEN_URL", "an http(s):// URL");
        let secret: Option<String> =
            env.optional("CRM_SERVICE_SECRET", "a secret of at least 32 characters");
        match (url, secret) {
            (Some(url), Some(secret)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    env.problem(format!(
                        "CRM_SERVICE_TOKEN_URL: {url:?} is not an http(s):// URL"
                    ));
                }
                if secret.len() < 32 {
                    env.problem("CRM_SERVICE_SECRET must be at least 32 characters");
                }
                Self::gateway(url, secret)
            }
            (None, None) => Self::Missing,
            _ => {
                env.problem("CRM_SERVICE_TOKEN_URL and CRM_SERVICE_SECRET go together");
                Self::Missing
            }
        }
    }
}
