//! Login, token refresh and logout; JWKS; who am I.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use kit::auth::{Claims, Role};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::{Caller, JsonBody, SharedState};
use crate::domain::{password, roles};
use crate::store::{audit, identity, refresh_tokens};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The tenant to sign in to; needed only when the same e-mail and
    /// password sign in to several tenants.
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// An access token (short-lived JWT) and a rotating refresh token.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
}

/// The tenant a service wants to act in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceTokenRequest {
    pub tenant_id: Uuid,
}

/// A short-lived access token of subject `service:<name>`.
#[derive(Serialize, ToSchema)]
pub struct ServiceToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Lifetime of the tokens services obtain for themselves.
const SERVICE_TOKEN_TTL: u64 = 300;

#[derive(Serialize, ToSchema)]
pub struct Me {
    pub tenant_id: Uuid,
    pub subject: String,
    pub roles: Vec<String>,
    pub teams: Vec<Uuid>,
    pub visibility: String,
}

fn hash_refresh(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A signed access token for `user` with its current roles and teams,
/// valid `ttl` seconds; `scopes` narrow it (an app entry link's).
pub(super) async fn access_token(
    state: &SharedState,
    tx: &mut sqlx::PgConnection,
    user: &identity::User,
    ttl: u64,
    scopes: Vec<String>,
) -> Result<String, Problem> {
    let user_roles: Vec<Role> = user.roles.iter().filter_map(|r| roles::parse(r)).collect();
    let teams = identity::teams_of(tx, user.tenant_id, user.id).await?;
    let now = Utc::now().timestamp();
    let claims = Claims {
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: user.id.to_string(),
        tid: user.tenant_id,
        vis: roles::visibility(&user_roles),
        roles: user_roles,
        teams,
        scopes,
        exp: now + ttl as i64,
        iat: now,
        jti: Uuid::now_v7().to_string(),
    };
    state
        .keys
        .sign(&claims)
        .await
        .map_err(|e| Problem::from(kit::Error::internal(e)))
}

/// Issues an access token and a new refresh token of `family`.
async fn issue(
    state: &SharedState,
    tx: &mut sqlx::PgConnection,
    user: &identity::User,
    family: Uuid,
) -> Result<TokenResponse, Problem> {
    let ttl = state.config.access_ttl.as_secs();
    let access_token = access_token(state, tx, user, ttl, Vec::new()).await?;
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let refresh_token = hex::encode(secret);
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.config.refresh_ttl)
            .unwrap_or(chrono::Duration::days(30));
    refresh_tokens::insert(
        tx,
        &hash_refresh(&refresh_token),
        user.tenant_id,
        user.id,
        family,
        expires_at,
    )
    .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token,
    })
}

/// The connecting client's address, when the server records it (the
/// gateway's own server does; a router driven directly in a test may not).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(parts))
    }
}

impl ClientIp {
    pub fn of(parts: &axum::http::request::Parts) -> Self {
        ClientIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        )
    }
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "too many attempts for this account or from this address; see Retry-After", body = problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "every password check slot is busy", body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<SharedState>,
    ClientIp(client): ClientIp,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    authenticate(&state, client, request).await.map(Json)
}

/// Signs a person in by e-mail and password (the JSON route and the app's
/// sign-in form alike): budgets, constant-time refusal, audit.
pub(super) async fn authenticate(
    state: &SharedState,
    client: Option<std::net::IpAddr>,
    request: LoginRequest,
) -> Result<TokenResponse, Problem> {
    let email = request.email.trim().to_lowercase();
    // Budgets first: an attempt over them costs no database work, no
    // argon2 and no audit row.
    state.login_guard.admit(client, &email)?;
    let refused = || Problem::unauthenticated("e-mail or password is wrong");
    let mut tx = state.db.pool().begin().await?;
    // E-mails are unique per tenant: the password decides which of the
    // e-mail's users signs in.
    let mut candidates = Vec::new();
    for (tenant, user_id) in identity::find_logins(&mut tx, &email, request.tenant_id).await? {
        kit::db::set_tenant(&mut tx, tenant).await?;
        candidates.extend(identity::find_user(&mut tx, tenant, user_id).await?);
    }
    // An unknown e-mail is checked against a decoy: the same time as a
    // wrong password.
    let mut hashes: Vec<String> = candidates.iter().map(|u| u.password_hash.clone()).collect();
    if hashes.is_empty() {
        hashes.push(password::decoy_hash().to_owned());
    }
    let given = request.password.clone();
    let matching = state
        .login_guard
        .hash(move || {
            hashes
                .iter()
                .map(|stored| password::verify(&given, stored))
                .collect::<Vec<bool>>()
        })
        .await?;
    let (mut accepted, mut failed) = (Vec::new(), Vec::new());
    for (user, matches) in candidates.into_iter().zip(matching) {
        if matches && user.disabled_at.is_none() {
            accepted.push(user);
        } else {
            failed.push(user);
        }
    }
    if accepted.len() > 1 {
        // Only someone who knows the password learns this.
        return Err(Problem::invalid(
            "tenant_id",
            "this e-mail and password sign in to several tenants: name the tenant",
        ));
    }
    let Some(user) = accepted.pop() else {
        // Recorded after the answer: a wrong password for a known e-mail
        // takes as long as an unknown e-mail (no write to wait for).
        drop(tx);
        let db = state.db.clone();
        tokio::spawn(async move {
            for user in failed {
                let (tenant, actor) = (user.tenant_id, user.id.to_string());
                let recorded = async {
                    let mut tx = db.begin_tenant(tenant).await?;
                    let details = serde_json::json!({});
                    audit::record(&mut tx, tenant, &actor, "login.failed", &email, details).await?;
                    tx.commit().await
                };
                if let Err(error) = recorded.await {
                    tracing::warn!(%error, "recording a failed login");
                }
            }
        });
        return Err(refused());
    };
    let tenant = user.tenant_id;
    kit::db::set_tenant(&mut tx, tenant).await?;
    let tokens = issue(state, &mut tx, &user, Uuid::now_v7()).await?;
    audit::record(
        &mut tx,
        tenant,
        &user.id.to_string(),
        "login",
        &email,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(tokens)
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn refresh(
    State(state): State<SharedState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    let hash = hash_refresh(&request.refresh_token);
    let mut tx = state.db.pool().begin().await?;
    let stored = refresh_tokens::find_for_use(&mut tx, &hash)
        .await?
        .ok_or_else(|| Problem::unauthenticated("refresh token unknown"))?;
    if stored.used_at.is_some() {
        // A rotated token came back: someone holds a copy. End the family.
        refresh_tokens::revoke_family(&mut tx, stored.family).await?;
        kit::db::set_tenant(&mut tx, stored.tenant_id).await?;
        audit::record(
            &mut tx,
            stored.tenant_id,
            &stored.user_id.to_string(),
            "refresh.reused",
            "refresh_token",
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        return Err(Problem::unauthenticated(
            "refresh token already used; sign in again",
        ));
    }
    if stored.revoked_at.is_some() || stored.expires_at < Utc::now() {
        return Err(Problem::unauthenticated("refresh token expired or revoked"));
    }
    kit::db::set_tenant(&mut tx, stored.tenant_id).await?;
    let user = identity::find_user(&mut tx, stored.tenant_id, stored.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| Problem::unauthenticated("user disabled"))?;
    refresh_tokens::mark_used(&mut tx, &hash).await?;
    let tokens = issue(&state, &mut tx, &user, stored.family).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest, responses((status = 204)))]
pub async fn logout(
    State(state): State<SharedState>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<StatusCode, Problem> {
    let mut tx = state.db.pool().begin().await?;
    if let Some(stored) =
        refresh_tokens::find_for_use(&mut tx, &hash_refresh(&request.refresh_token)).await?
    {
        refresh_tokens::revoke_family(&mut tx, stored.family).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, description = "JSON Web Key Set")))]
pub async fn jwks(State(state): State<SharedState>) -> Json<serde_json::Value> {
    Json(state.keys.jwks().await)
}

#[utoipa::path(get, path = "/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn me(caller: Caller) -> Json<Me> {
    let context = caller.context;
    Json(Me {
        tenant_id: context.tenant_id,
        subject: context.subject,
        roles: context
            .roles
            .iter()
            .map(|r| roles::name(*r).to_owned())
            .collect(),
        teams: context.teams,
        visibility: format!("{:?}", context.visibility).to_lowercase(),
    })
}

/// Claims of a token for `service` acting by itself in `tenant`.
pub fn service_claims(state: &SharedState, service: &str, tenant: Uuid, ttl: u64) -> Claims {
    let now = Utc::now().timestamp();
    Claims {
        iss: state.config.issuer.clone(),
        aud: state.config.audience.clone(),
        sub: format!("service:{service}"),
        tid: tenant,
        roles: vec![Role::Service],
        teams: Vec::new(),
        scopes: Vec::new(),
        vis: kit::auth::Visibility::Tenant,
        exp: now + ttl as i64,
        iat: now,
        jti: Uuid::now_v7().to_string(),
    }
}

/// The client-credentials grant (RFC 6749 section 4.4) for the platform's
/// own services: a service presents its secret (`GATEWAY_<DOMAIN>_SECRET`
/// here, `CRM_SERVICE_SECRET` there) as a bearer token and gets a token to
/// act by itself in one tenant (automation rules, journeys).
#[utoipa::path(post, path = "/v1/auth/service-token", tag = "auth", request_body = ServiceTokenRequest,
    responses((status = 200, body = ServiceToken),
        (status = 401, description = "not a service's secret", body = problem::ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "no such tenant", body = problem::ProblemDocument, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn service_token(
    State(state): State<SharedState>,
    headers: axum::http::HeaderMap,
    JsonBody(request): JsonBody<ServiceTokenRequest>,
) -> Result<Json<ServiceToken>, Problem> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or_default();
    // Digests are compared, so the time taken tells nothing of a secret.
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let service = state
        .config
        .service_secrets
        .iter()
        .find(|(_, secret)| **secret == digest)
        .map(|(name, _)| name.clone())
        .ok_or_else(|| Problem::unauthenticated("not a service's secret"))?;
    let mut tx = state.db.pool().begin().await?;
    identity::find_tenant(&mut tx, request.tenant_id)
        .await?
        .ok_or_else(|| Problem::from(kit::Error::not_found("tenant", request.tenant_id)))?;
    drop(tx);
    let claims = service_claims(&state, &service, request.tenant_id, SERVICE_TOKEN_TTL);
    let access_token = state
        .keys
        .sign(&claims)
        .await
        .map_err(|e| Problem::from(kit::Error::internal(e)))?;
    Ok(Json(ServiceToken {
        access_token,
        token_type: "Bearer",
        expires_in: SERVICE_TOKEN_TTL,
    }))
}
