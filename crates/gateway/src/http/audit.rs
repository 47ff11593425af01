//! `GET /v1/audit-log`: the tenant's security-relevant actions (logins,
//! failed logins, role changes, keys, exports, erasures), newest first.
//! Admins only.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::problem::{self, Problem};
use super::rest::parse_uuid;
use super::{Caller, SharedState};
use crate::store::audit;

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    /// User id (or `apikey:<id>`) that acted.
    pub actor: String,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_page_token: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", security(("bearer" = [])),
    params(("action" = Option<String>, Query, description = "only this action, e.g. contact.erased"),
           ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = AuditPage), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, Problem> {
    caller.require_admin("read the audit log")?;
    let page = super::rest::page_params(&params, &["page_size", "page_token", "action"])?;
    let before = match page.page_token.as_str() {
        "" => None,
        token => Some(parse_uuid("page_token", token)?),
    };
    let size = if page.page_size == 0 {
        50
    } else {
        page.page_size
    } as usize;
    let tenant = caller.context.tenant_id;
    let mut tx = state.db.begin_tenant(tenant).await?;
    let mut rows = audit::list(
        &mut tx,
        tenant,
        params.get("action").map(String::as_str),
        before,
        size as i64 + 1,
    )
    .await?;
    tx.commit().await?;
    let next_page_token = (rows.len() > size).then(|| {
        rows.truncate(size);
        rows.last().map(|r| r.id.to_string()).unwrap_or_default()
    });
    Ok(Json(AuditPage {
        items: rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.id,
                actor: r.actor,
                action: r.action,
                target: r.target,
                details: r.details,
                at: r.at,
            })
            .collect(),
        next_page_token,
    }))
}
