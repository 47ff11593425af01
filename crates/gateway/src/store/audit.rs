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
