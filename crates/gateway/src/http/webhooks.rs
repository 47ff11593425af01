//! `/v1/webhooks`: admins register endpoints for chosen event types and see
//! every delivery attempt.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use kit::error::Violations;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::rest::parse_uuid;
use super::{Caller, JsonBody, SharedState};
use crate::store::{audit, webhooks};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// https:// endpoint that receives POSTed JSON events.
    #[schema(pattern = "^https?://", max_length = 2000)]
    pub url: String,
    /// Event types such as `crm.customers.contact.created.v1`, or `*`.
    #[schema(min_items = 1, max_items = 100)]
    pub event_types: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// Verifies the `Crm-Signature` header. Shown only now.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// pending, delivered or failed
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn view(hook: webhooks::Webhook) -> WebhookView {
    WebhookView {
        id: hook.id,
        url: hook.url,
        event_types: hook.event_types,
        created_at: hook.created_at,
    }
}

/// Each endpoint is a delivery loop's worth of work and a target to check.
pub const MAX_WEBHOOKS_PER_TENANT: i64 = 25;

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook, security(("bearer" = [])),
    responses((status = 201, body = WebhookCreated), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), Problem> {
    caller.require_admin("manage webhooks")?;
    let mut violations = Violations::new();
    let url = request.url.trim().to_owned();
    let secure = url.starts_with("https://");
    let allowed_insecure = state.config.allow_insecure_webhooks && url.starts_with("http://");
    if !(secure || allowed_insecure) || url.len() > 2000 || url.chars().any(char::is_whitespace) {
        violations.add("url", "must be an https:// URL");
    } else if let Err(reason) = state.config.webhook_egress.check_url(&url).await {
        violations.add("url", reason);
    }
    if request.event_types.is_empty() || request.event_types.len() > 100 {
        violations.add("event_types", "1 to 100 event types, or [\"*\"]");
    }
    for (i, event_type) in request.event_types.iter().enumerate() {
        let valid = event_type == "*"
            || (event_type.starts_with("crm.")
                && event_type.split('.').count() >= 4
                && event_type
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_'));
        if !valid {
            violations.add(
                format!("event_types[{i}]"),
                "must be an event type such as crm.customers.contact.created.v1, or *",
            );
        }
    }
    violations.into_result()?;
    let mut random = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = format!("whsec_{}", hex::encode(random));
    let hook = webhooks::Webhook {
        id: Uuid::now_v7(),
        url,
        event_types: request.event_types,
        secret: secret.clone(),
        created_at: Utc::now(),
    };
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if webhooks::count_for_creation(&mut tx, tenant).await? >= MAX_WEBHOOKS_PER_TENANT {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "FAILED_PRECONDITION",
            format!("a tenant has at most {MAX_WEBHOOKS_PER_TENANT} webhooks; delete one first"),
        ));
    }
    webhooks::insert(&mut tx, tenant, &hook, &caller.context.subject).await?;
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "webhook.created",
        &hook.id.to_string(),
        serde_json::json!({"url": hook.url}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: view(hook),
            secret,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("bearer" = [])), responses((status = 200, body = Vec<WebhookView>)))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<Vec<WebhookView>>, Problem> {
    caller.require_admin("manage webhooks")?;
    let mut tx = state.db.begin_tenant(caller.context.tenant_id).await?;
    Ok(Json(
        webhooks::list(&mut tx, caller.context.tenant_id)
            .await?
            .into_iter()
            .map(view)
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 204), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require_admin("manage webhooks")?;
    let id = parse_uuid("id", &id)?;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if !webhooks::delete(&mut tx, tenant, id).await? {
        return Err(Problem::from(kit::Error::not_found("webhook", id)));
    }
    audit::record(
        &mut tx,
        tenant,
        &caller.context.subject,
        "webhook.deleted",
        &id.to_string(),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "webhook id")),
    responses((status = 200, body = Vec<DeliveryView>), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn deliveries(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<DeliveryView>>, Problem> {
    caller.require_admin("manage webhooks")?;
    let id = parse_uuid("id", &id)?;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    if webhooks::find(&mut tx, tenant, id).await?.is_none() {
        return Err(Problem::from(kit::Error::not_found("webhook", id)));
    }
    let rows = webhooks::deliveries(&mut tx, tenant, id, 100).await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| DeliveryView {
                id: d.id,
                event_id: d.event_id,
                event_type: d.event_type,
                status: d.status,
                attempts: d.attempts,
                last_status_code: d.last_status_code,
                last_error: d.last_error,
                created_at: d.created_at,
                delivered_at: d.delivered_at,
            })
            .collect(),
    ))
}
