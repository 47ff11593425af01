//! Refresh tokens, stored as SHA-256 hashes of the opaque token.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(sqlx::FromRow)]
pub struct StoredRefresh {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub family: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    tx: &mut PgConnection,
    hash: &[u8],
    tenant: Uuid,
    user: Uuid,
    family: Uuid,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, family, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash)
    .bind(tenant)
    .bind(user)
    .bind(family)
    .bind(expires_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Loads a token and locks it, so two concurrent refreshes cannot both use it.
pub async fn find_for_use(
    tx: &mut PgConnection,
    hash: &[u8],
) -> sqlx::Result<Option<StoredRefresh>> {
    sqlx::query_as(
        "SELECT tenant_id, user_id, family, expires_at, used_at, revoked_at FROM refresh_tokens
          WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(hash)
    .fetch_optional(tx)
    .await
}

pub async fn mark_used(tx: &mut PgConnection, hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(hash)
        .execute(tx)
        .await?;
    Ok(())
}

pub async fn revoke_family(tx: &mut PgConnection, family: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE family = $1",
    )
    .bind(family)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn revoke_user(tx: &mut PgConnection, tenant: Uuid, user: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant)
        .bind(user)
        .execute(tx)
        .await?;
    Ok(())
}
