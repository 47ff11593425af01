//! The services' one idempotency mechanism (AIP-155): a create-like RPC
//! takes a `request_id`; the service records which record the first call
//! made, with a fingerprint of the request, in the same transaction. A retry
//! with the same id and the same request gets that record back; the same id
//! with another request is refused, so a reused key never hides a different
//! write. The gateway passes `Idempotency-Key` through as `request_id`.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::Error;

/// SHA-256 of the encoded request. Callers pass it with `request_id`
/// cleared, so the fingerprint is that of what was asked, not of the key.
pub fn fingerprint(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// Whether a stored fingerprint allows a replay: rows made before
/// fingerprints were kept have none and replay as before.
pub fn check(request_id: &str, stored: Option<&[u8]>, fingerprint: &[u8]) -> crate::Result<()> {
    match stored {
        Some(stored) if stored != fingerprint => Err(Error::AlreadyExists(format!(
            "request_id {request_id:?} was used for a different request; use a new one"
        ))),
        _ => Ok(()),
    }
}

/// The record an earlier create with `request_id` made, if any (none
/// without a request id); the same id with a different request is refused.
/// Reads the service's `create_requests` table (tenant, entity, request id,
/// fingerprint, record), which every service's migrations create alike.
pub async fn replayed(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    entity: &str,
    request_id: &str,
    fingerprint: &[u8],
) -> crate::Result<Option<uuid::Uuid>> {
    if request_id.is_empty() {
        return Ok(None);
    }
    let row: Option<(uuid::Uuid, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT record_id, fingerprint FROM create_requests WHERE tenant_id = $1 AND entity = $2 AND request_id = $3",
    )
    .bind(tenant)
    .bind(entity)
    .bind(request_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, stored)) = row else {
        return Ok(None);
    };
    check(request_id, stored.as_deref(), fingerprint)?;
    Ok(Some(id))
}

/// Records which record a create with `request_id` made, and of what
/// request, in the create's own transaction (nothing without a request id).
/// Two concurrent creates with one id: the second's insert conflicts and
/// its transaction rolls back, so only one record is ever made.
pub async fn remember(
    tx: &mut sqlx::PgConnection,
    tenant: uuid::Uuid,
    entity: &str,
    request_id: &str,
    fingerprint: &[u8],
    record: uuid::Uuid,
) -> crate::Result<()> {
    if request_id.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO create_requests (tenant_id, entity, request_id, fingerprint, record_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tenant)
    .bind(entity)
    .bind(request_id)
    .bind(fingerprint)
    .bind(record)
    .execute(&mut *tx)
    .await
    .map_err(crate::Error::from)
    .map_err(|e| e.exists_as(|| format!("request_id {request_id:?} is being used by another request")))?;
    Ok(())
}
