//! How fresh each tenant's figures are, per source domain.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The domain's figures now include what happened at `at`.
pub async fn advance(
    tx: &mut PgConnection,
    tenant: Uuid,
    domain: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO freshness (tenant_id, domain, as_of) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, domain) DO UPDATE SET as_of = greatest(freshness.as_of, EXCLUDED.as_of)",
    )
    .bind(tenant)
    .bind(domain)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// The time of the latest event of `domain` applied for the tenant.
pub async fn as_of(
    tx: &mut PgConnection,
    tenant: Uuid,
    domain: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT as_of FROM freshness WHERE tenant_id = $1 AND domain = $2")
        .bind(tenant)
        .bind(domain)
        .fetch_optional(tx)
        .await
}
