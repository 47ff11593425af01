//! Tenants are created by the platform operator (bootstrap token), each
//! with its first admin; the operator also rotates signing keys.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use kit::error::Violations;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::{JsonBody, SharedState};
use crate::domain::password;
use crate::store::{audit, identity};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default = "default_currency")]
    pub default_currency: String,
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    pub admin_email: String,
    pub admin_name: String,
    pub admin_password: String,
}

fn default_currency() -> String {
    "EUR".into()
}
fn default_time_zone() -> String {
    "UTC".into()
}
fn default_locale() -> String {
    "en".into()
}

#[derive(Serialize, ToSchema)]
pub struct TenantCreated {
    pub tenant_id: Uuid,
    pub admin_user_id: Uuid,
}

/// Constant-time comparison with the configured bootstrap token.
pub fn check_bootstrap(state: &SharedState, headers: &HeaderMap) -> Result<(), Problem> {
    let expected = state.config.bootstrap_token.as_deref().ok_or_else(|| {
        Problem::forbidden("tenant creation is disabled (no GATEWAY_BOOTSTRAP_TOKEN)")
    })?;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| Problem::unauthenticated("missing bootstrap token"))?;
    let equal = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if equal {
        Ok(())
    } else {
        Err(Problem::unauthenticated("bootstrap token invalid"))
    }
}

pub fn check_email(field: &str, raw: &str, violations: &mut Violations) -> String {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if !valid {
        violations.add(field, "is not an e-mail address");
    }
    email
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant, security(("bootstrap" = [])),
    responses((status = 201, body = TenantCreated), (status = 400, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json"), (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateTenant>,
) -> Result<(StatusCode, Json<TenantCreated>), Problem> {
    check_bootstrap(&state, &headers)?;
    let mut violations = Violations::new();
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        violations.add("name", "must be 1 to 200 characters");
    }
    if !(request.default_currency.len() == 3
        && request
            .default_currency
            .chars()
            .all(|c| c.is_ascii_uppercase()))
    {
        violations.add(
            "default_currency",
            "must be an ISO 4217 code such as \"EUR\"",
        );
    }
    let email = check_email("admin_email", &request.admin_email, &mut violations);
    if request.admin_name.trim().is_empty() {
        violations.add("admin_name", "is required");
    }
    violations.check(password::check("admin_password", &request.admin_password));
    violations.into_result()?;

    let tenant = identity::Tenant {
        id: Uuid::now_v7(),
        name,
        default_currency: request.default_currency,
        time_zone: request.time_zone,
        locale: request.locale,
    };
    let given = request.admin_password.clone();
    let hash = state
        .login_guard
        .hash(move || password::hash(&given))
        .await?
        .map_err(|e| Problem::from(kit::Error::internal(e)))?;
    let admin = identity::User {
        tenant_id: tenant.id,
        id: Uuid::now_v7(),
        email: email.clone(),
        display_name: request.admin_name.trim().to_owned(),
        password_hash: hash,
        roles: vec!["admin".into()],
        disabled_at: None,
        created_at: chrono::Utc::now(),
    };
    let mut tx = state.db.begin_tenant(tenant.id).await?;
    identity::insert_tenant(&mut tx, &tenant).await?;
    identity::insert_user(&mut tx, &admin)
        .await
        .map_err(|e| match Problem::from(e) {
            p if p.status == 409 => Problem::invalid("admin_email", "is already registered"),
            p => p,
        })?;
    audit::record(
        &mut tx,
        tenant.id,
        "platform",
        "tenant.created",
        &tenant.id.to_string(),
        serde_json::json!({"admin": email}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant_id: tenant.id,
            admin_user_id: admin.id,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "tenants", security(("bootstrap" = [])),
    responses((status = 204), (status = 401, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn rotate_keys(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<StatusCode, Problem> {
    check_bootstrap(&state, &headers)?;
    state
        .keys
        .rotate()
        .await
        .map_err(|e| Problem::from(kit::Error::internal(e)))?;
    Ok(StatusCode::NO_CONTENT)
}
