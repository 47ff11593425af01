//! API keys for integrations: admins create them (the secret is shown once),
//! list them (never the secret) and revoke them. A request authenticated by
//! a key acts as a `manager` limited to the key's scopes; the gateway mints
//! a short-lived access token for it, so services verify keys' calls like
//! any other token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kit::auth::{CallerContext, Claims, Role, Visibility};
use kit::error::Violations;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::rest::parse_uuid;
use super::{Caller, JsonBody, SharedState};
use crate::store::{api_keys, audit};

/// Scopes a key can hold: `<domain>:read` and `<domain>:write` for every
/// domain service the contracts declare, the names each service checks.
/// One list, derived from `proto/`: a new service's scopes need no code here.
pub fn scopes() -> Vec<String> {
    super::transcode::message::domains()
        .into_iter()
        .flat_map(|domain| [format!("{domain}:read"), format!("{domain}:write")])
        .collect()
}
const PREFIX: &str = "crm_";
/// Lifetime of the access token minted for one request made with a key.
const KEY_TOKEN_SECONDS: i64 = 300;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
}

/// A scope an API key can hold; `http::docs` lists the values from
/// [`scopes`] in the document.
#[derive(ToSchema)]
#[schema(value_type = String)]
pub struct ScopeName(#[allow(dead_code)] String);

#[derive(Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked: bool,
}

/// The one response that shows the secret.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Send as `Authorization: Bearer <key>`. Shown only now.
    pub secret: String,
}

impl From<api_keys::ApiKey> for ApiKeyView {
    fn from(key: api_keys::ApiKey) -> Self {
        ApiKeyView {
            id: key.id,
            name: key.name,
            scopes: key.scopes,
            created_by: key.created_by,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked: key.revoked_at.is_some(),
        }
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether a bearer credential is an API key rather than a JWT.
pub fn is_api_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// How long a checked key is answered from memory. A key revoked on this
/// pod is dropped at once; other pods notice within this time.
const KEY_CACHE_SECONDS: u64 = 30;

/// Keys checked recently: SHA-256 of the secret -> caller, service token,
/// and until when they may be reused.
#[derive(Default)]
pub struct KeyCache(
    std::sync::Mutex<
        std::collections::HashMap<Vec<u8>, (CallerContext, String, std::time::Instant)>,
    >,
);

impl KeyCache {
    fn get(&self, digest: &[u8]) -> Option<(CallerContext, String)> {
        let cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(digest)
            .filter(|(_, _, until)| *until > std::time::Instant::now())
            .map(|(caller, token, _)| (caller.clone(), token.clone()))
    }

    fn put(&self, digest: Vec<u8>, caller: &CallerContext, token: &str) {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= 10_000 {
            let now = std::time::Instant::now();
            cache.retain(|_, (_, _, until)| *until > now);
        }
        let until = std::time::Instant::now() + std::time::Duration::from_secs(KEY_CACHE_SECONDS);
        cache.insert(digest, (caller.clone(), token.to_owned(), until));
    }

    /// Forgets every key (after a revocation).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Checks a key and returns the caller it acts as plus a token for services.
/// A key seen in the last seconds is answered from memory; any other costs
/// the client's address one attempt of its budget before the database is
/// asked, so made-up keys cannot turn into a flood of queries.
pub async fn authenticate(
    state: &SharedState,
    secret: &str,
    client: Option<std::net::IpAddr>,
) -> Result<(CallerContext, String), Problem> {
    let digest = hash(secret);
    if let Some(known) = state.api_key_cache.get(&digest) {
        return Ok(known);
    }
    state.login_guard.admit_address(client)?;
    let refused = || Problem::unauthenticated("API key invalid or revoked");
    // crm_<tenant uuid, 32 hex>_<secret>
    let tenant = secret
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.get(..32))
        .and_then(|hex| Uuid::parse_str(hex).ok())
        .ok_or_else(refused)?;
    let mut tx = state.db.begin_tenant(tenant).await?;
    let key = api_keys::find_by_hash(&mut tx, tenant, &digest)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or_else(refused)?;
    api_keys::touch(&mut tx, tenant, key.id).await?;
    tx.commit().await?;
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: format!("apikey:{}", key.id),
        tid: tenant,
        roles: vec![Role::Manager],
        teams: Vec::new(),
        scopes: key.scopes,
        vis: Visibility::Tenant,
        exp: now + KEY_TOKEN_SECONDS,
        iat: now,
        jti: Uuid::now_v7().to_string(),
    };
    let token = state
        .keys
        .sign(&claims)
        .await
        .map_err(|e| Problem::from(kit::Error::internal(e)))?;
    let caller = CallerContext::from_claims(claims);
    state.api_key_cache.put(digest, &caller, &token);
    Ok((caller, token))
}

#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateApiKey, security(("bearer" = [])),
    responses((status = 201, body = ApiKeyCreated), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), Problem> {
    caller.require_admin("manage API keys")?;
    let mut violations = Violations::new();
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        violations.add("name", "must be 1 to 100 characters");
    }
    if request.scopes.is_empty() {
        violations.add("scopes", "at least one scope");
    }
    let known = scopes();
    for (i, scope) in request.scopes.iter().enumerate() {
        if !known.contains(scope) {
            violations.add(
                format!("scopes[{i}]"),
                format!("must be one of {}", known.join(", ")),
            );
        }
    }
    violations.into_result()?;
    let tenant = caller.context.tenant_id;
    let mut random = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = format!("{PREFIX}{}_{}", tenant.simple(), hex::encode(random));
    let key = api_keys::ApiKey {
        id: Uuid::now_v7(),
        name,
        scopes: request.scopes,
        created_by: caller.context.subject.clone(),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let mut tx = state.db.begin_tenant(tenant).await?;
    api_keys::insert(&mut tx, tenant, &key, &hash(&secret)).await?;
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "api_key.created",
        &key.id.to_string(),
        serde_json::json!({"scopes": key.scopes}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key: key.into(),
            secret,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<ApiKeyView>), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<ApiKeyView>>, Problem> {
    caller.require_admin("manage API keys")?;
    let mut tx = state.db.begin_tenant(caller.context.tenant_id).await?;
    let keys = api_keys::list(&mut tx, caller.context.tenant_id).await?;
    Ok(Json(keys.into_iter().map(ApiKeyView::from).collect()))
}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require_admin("manage API keys")?;
    let id = parse_uuid("id", &id)?;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if !api_keys::revoke(&mut tx, tenant, id).await? {
        return Err(Problem::from(kit::Error::not_found("API key", id)));
    }
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "api_key.revoked",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    state.api_key_cache.clear();
    Ok(StatusCode::NO_CONTENT)
}
