//! Webhook endpoints, deliveries and the cross-tenant delivery queue.

use chrono::{DateTime, Utc};
use kit::events::Event;
use prost::Message as _;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub envelope: Vec<u8>,
    pub status: String,
    pub attempts: i32,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    hook: &Webhook,
    created_by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhooks (tenant_id, id, url, event_types, secret, created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant)
    .bind(hook.id)
    .bind(&hook.url)
    .bind(&hook.event_types)
    .bind(&hook.secret)
    .bind(created_by)
    .execute(tx)
    .await?;
    Ok(())
}

/// The tenant's active endpoints, counted under a per-tenant lock held
/// until the transaction ends, so concurrent creations cannot both pass a cap.
pub async fn count_for_creation(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || $1::text, 0))")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM webhooks WHERE tenant_id = $1 AND disabled_at IS NULL",
    )
    .bind(tenant)
    .fetch_one(&mut *tx)
    .await?;
    Ok(count)
}

pub async fn list(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<Webhook>> {
    sqlx::query_as(
        "SELECT id, url, event_types, secret, created_at FROM webhooks
          WHERE tenant_id = $1 AND disabled_at IS NULL ORDER BY created_at",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await
}

pub async fn find(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<Option<Webhook>> {
    sqlx::query_as(
        "SELECT id, url, event_types, secret, created_at FROM webhooks
          WHERE tenant_id = $1 AND id = $2 AND disabled_at IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await
}

pub async fn delete(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let result = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(result.rows_affected() > 0)
}

/// Endpoints of the tenant subscribed to `event_type` (or to `*`).
pub async fn subscribed(
    tx: &mut PgConnection,
    tenant: Uuid,
    event_type: &str,
) -> sqlx::Result<Vec<Uuid>> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM webhooks WHERE tenant_id = $1 AND disabled_at IS NULL
            AND ($2 = ANY(event_types) OR '*' = ANY(event_types))",
    )
    .bind(tenant)
    .bind(event_type)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Queues one delivery of an event to an endpoint (once per pair).
pub async fn enqueue(
    tx: &mut PgConnection,
    tenant: Uuid,
    webhook: Uuid,
    event_id: Uuid,
    event: &Event,
) -> sqlx::Result<()> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (tenant_id, id, webhook_id, event_id, event_type, envelope, subject)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(id)
    .bind(webhook)
    .bind(event_id)
    .bind(&event.r#type)
    .bind(event.encode_to_vec())
    .bind(&event.subject)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        sqlx::query("INSERT INTO webhook_queue (tenant_id, delivery_id) VALUES ($1, $2)")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Deliveries due now, locked so several gateway pods share the work.
/// Locks due deliveries (skipping those another dispatcher holds): up to
/// `tenants` tenants with work due, at most `per_tenant` of each, oldest first.
pub async fn lock_due_fairly(
    tx: &mut PgConnection,
    tenants: i64,
    per_tenant: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "WITH due AS (
             SELECT DISTINCT tenant_id FROM webhook_queue WHERE next_attempt <= now() LIMIT $1
         )
         SELECT q.tenant_id, q.delivery_id FROM due CROSS JOIN LATERAL (
             SELECT w.tenant_id, w.delivery_id FROM webhook_queue w
              WHERE w.tenant_id = due.tenant_id AND w.next_attempt <= now()
              ORDER BY w.next_attempt LIMIT $2 FOR UPDATE SKIP LOCKED
         ) q",
    )
    .bind(tenants)
    .bind(per_tenant)
    .fetch_all(tx)
    .await
}

const DELIVERY_COLUMNS: &str =
    "id, webhook_id, event_id, event_type, envelope, status, attempts, last_status_code, \
    last_error, created_at, delivered_at";

pub async fn delivery(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await
}

pub async fn deliveries(
    tx: &mut PgConnection,
    tenant: Uuid,
    webhook: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2
          ORDER BY created_at DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(webhook)
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Records an attempt. `next` = when to retry; None = finished (delivered
/// when `delivered`, failed for good otherwise).
pub async fn record_attempt(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status_code: Option<i32>,
    error: Option<&str>,
    delivered: bool,
    next: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    let status = match (delivered, next) {
        (true, _) => "delivered",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    // A finished delivery no longer needs its event (which may hold
    // personal data): only what the API shows stays.
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = $3, last_error = $4, status = $5,
            delivered_at = CASE WHEN $5 = 'delivered' THEN now() END,
            envelope = CASE WHEN $5 = 'pending' THEN envelope ELSE ''::bytea END
          WHERE tenant_id = $1 AND id = $2 AND status = 'pending'",
    )
    .bind(tenant)
    .bind(id)
    .bind(status_code)
    .bind(error)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    match next {
        Some(at) => {
            sqlx::query("UPDATE webhook_queue SET next_attempt = $3 WHERE tenant_id = $1 AND delivery_id = $2")
                .bind(tenant)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            sqlx::query("DELETE FROM webhook_queue WHERE tenant_id = $1 AND delivery_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    Ok(())
}

/// Cancels the deliveries not yet sent of events about `subject` (an
/// erased contact) and drops their events; answers how many.
pub async fn cancel_pending_about(
    tx: &mut PgConnection,
    tenant: Uuid,
    subject: &str,
) -> sqlx::Result<u64> {
    let cancelled: Vec<(Uuid,)> = sqlx::query_as(
        "UPDATE webhook_deliveries SET status = 'failed', envelope = ''::bytea,
            last_error = 'not sent: the contact was erased'
          WHERE tenant_id = $1 AND subject = $2 AND status = 'pending' RETURNING id",
    )
    .bind(tenant)
    .bind(subject)
    .fetch_all(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = cancelled.into_iter().map(|(id,)| id).collect();
    sqlx::query("DELETE FROM webhook_queue WHERE tenant_id = $1 AND delivery_id = ANY($2)")
        .bind(tenant)
        .bind(&ids)
        .execute(tx)
        .await?;
    Ok(ids.len() as u64)
}
