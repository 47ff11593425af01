//! API keys, stored as SHA-256 hashes.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, name, scopes, created_by, created_at, last_used_at, revoked_at";

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    key: &ApiKey,
    hash: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (tenant_id, id, name, key_hash, scopes, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(key.id)
    .bind(&key.name)
    .bind(hash)
    .bind(&key.scopes)
    .bind(&key.created_by)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn list(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<ApiKey>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at"
    ))
    .bind(tenant)
    .fetch_all(tx)
    .await
}

pub async fn find_by_hash(
    tx: &mut PgConnection,
    tenant: Uuid,
    hash: &[u8],
) -> sqlx::Result<Option<ApiKey>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 AND key_hash = $2"
    ))
    .bind(tenant)
    .bind(hash)
    .fetch_optional(tx)
    .await
}

/// Records use at most once a minute per key, to keep hot keys cheap.
pub async fn touch(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now()
          WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
    )
    .bind(tenant)
    .bind(id)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn revoke(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .execute(tx)
    .await?;
    Ok(result.rows_affected() > 0)
}
