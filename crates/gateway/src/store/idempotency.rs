//! Idempotency keys: the first request with a key reserves it; its response
//! is stored and replayed for 24 hours to retries with the same key.

use sqlx::PgConnection;
use uuid::Uuid;

pub enum Reservation {
    /// First use: go ahead and store the response afterwards.
    Reserved,
    /// Done before with the same request: replay this response.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

pub async fn reserve(
    tx: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    request_hash: &[u8],
) -> sqlx::Result<Reservation> {
    sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND created_at < now() - interval '24 hours'")
        .bind(tenant)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, key, request_hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Reservation::Reserved);
    }
    let (hash, status, body): (Vec<u8>, Option<i32>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, status, body FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    Ok(match (hash == request_hash, status, body) {
        (false, _, _) => Reservation::Mismatch,
        (true, Some(status), Some(body)) => Reservation::Replay {
            status: status as u16,
            body,
        },
        _ => Reservation::InFlight,
    })
}

pub async fn complete(
    tx: &mut PgConnection,
    tenant: Uuid,
    key: &str,
    status: u16,
    body: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE tenant_id = $1 AND key = $2",
    )
    .bind(tenant)
    .bind(key)
    .bind(i32::from(status))
    .bind(body)
    .execute(tx)
    .await?;
    Ok(())
}

/// Frees a key whose request failed, so the client may retry with it.
pub async fn release(tx: &mut PgConnection, tenant: Uuid, key: &str) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(tenant)
    .bind(key)
    .execute(tx)
    .await?;
    Ok(())
}
