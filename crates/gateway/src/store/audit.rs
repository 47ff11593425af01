//! Audit log of security-relevant actions.

use sqlx::PgConnection;
use uuid::Uuid;

pub async fn record(
    tx: &mut PgConnection,
    tenant: Uuid,
    actor: &str,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO audit_log (tenant_id, id, actor, action, target, details) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(details)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Newest first; ids are UUIDv7, so `before` pages back in time.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    action: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Entry>> {
    sqlx::query_as(
        "SELECT id, actor, action, target, details, at FROM audit_log \
         WHERE tenant_id = $1 AND ($2::text IS NULL OR action = $2) AND ($3::uuid IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(action)
    .bind(before)
    .bind(limit)
    .fetch_all(tx)
    .await
}
