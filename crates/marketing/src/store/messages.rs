//! Sender identities, templates, sends, their recipients and the outbound
//! queue.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{
    MemberStatus, RecipientStatus, Send, SendRecipient, SendStatus, SenderIdentity, SkipReason,
    Template,
};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::{audit, id_text};

// ---- sender identities

#[derive(sqlx::FromRow)]
struct IdentityRow {
    id: Uuid,
    from_address: String,
    from_name: String,
    reply_to: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<IdentityRow> for SenderIdentity {
    fn from(r: IdentityRow) -> Self {
        SenderIdentity {
            id: r.id.to_string(),
            from_address: r.from_address,
            from_name: r.from_name,
            reply_to: r.reply_to,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

const IDENTITY_COLUMNS: &str =
    "id, from_address, from_name, reply_to, created_at, created_by, updated_at, updated_by, version";

pub async fn insert_identity(
    tx: &mut PgConnection,
    tenant: Uuid,
    i: &SenderIdentity,
    actor: &str,
) -> sqlx::Result<SenderIdentity> {
    let row: IdentityRow = sqlx::query_as(&format!(
        "INSERT INTO sender_identities (tenant_id, id, from_address, from_name, reply_to, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {IDENTITY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(&i.from_address)
    .bind(&i.from_name)
    .bind(&i.reply_to)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Oldest first: the first is the tenant's default.
pub async fn identities(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<SenderIdentity>> {
    let rows: Vec<IdentityRow> = sqlx::query_as(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM sender_identities WHERE tenant_id = $1 ORDER BY id LIMIT 100"
    ))
    .bind(tenant)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(SenderIdentity::from).collect())
}

// ---- templates

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: Uuid,
    name: String,
    channel: i16,
    subject: String,
    html_body: String,
    text_body: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<TemplateRow> for Template {
    fn from(r: TemplateRow) -> Self {
        Template {
            id: r.id.to_string(),
            name: r.name,
            channel: r.channel.into(),
            subject: r.subject,
            html_body: r.html_body,
            text_body: r.text_body,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

const TEMPLATE_COLUMNS: &str = "id, name, channel, subject, html_body, text_body, created_at, created_by, updated_at, updated_by, version";

pub async fn insert_template(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    t: &Template,
    actor: &str,
) -> sqlx::Result<Template> {
    let row: TemplateRow = sqlx::query_as(&format!(
        "INSERT INTO templates (tenant_id, id, name, channel, subject, html_body, text_body, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {TEMPLATE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&t.name)
    .bind(t.channel as i16)
    .bind(&t.subject)
    .bind(&t.html_body)
    .bind(&t.text_body)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_template(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Template>> {
    let row: Option<TemplateRow> = sqlx::query_as(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Template::from))
}

/// Newest first.
pub async fn list_templates(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Template>> {
    let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Template::from).collect())
}

// ---- sends

#[derive(sqlx::FromRow)]
struct SendRow {
    id: Uuid,
    template_id: Uuid,
    sender_identity_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    segment_id: Option<Uuid>,
    contact_ids: Vec<Uuid>,
    status: i16,
    error: String,
    completed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<SendRow> for Send {
    fn from(r: SendRow) -> Self {
        Send {
            id: r.id.to_string(),
            template_id: r.template_id.to_string(),
            sender_identity_id: id_text(r.sender_identity_id),
            campaign_id: id_text(r.campaign_id),
            segment_id: id_text(r.segment_id),
            contact_ids: r.contact_ids.iter().map(Uuid::to_string).collect(),
            status: r.status.into(),
            error: r.error,
            completed_at: kit::time::to_optional_timestamp(r.completed_at),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
            ..Default::default()
        }
    }
}

const SEND_COLUMNS: &str = "id, template_id, sender_identity_id, campaign_id, segment_id, contact_ids, status, error, completed_at, created_at, created_by, updated_at, updated_by, version";

/// What a new send is made of, checked.
pub struct NewSend {
    pub id: Uuid,
    pub template: Uuid,
    pub identity: Option<Uuid>,
    pub campaign: Option<Uuid>,
    pub segment: Option<Uuid>,
    pub contacts: Vec<Uuid>,
    pub channel: i32,
}

pub async fn insert_send(
    tx: &mut PgConnection,
    tenant: Uuid,
    s: &NewSend,
    status: SendStatus,
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sends (tenant_id, id, template_id, sender_identity_id, campaign_id, segment_id, contact_ids, channel, status, \
         completed_at, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 = 3 THEN now() END, $10, $10)",
    )
    .bind(tenant)
    .bind(s.id)
    .bind(s.template)
    .bind(s.identity)
    .bind(s.campaign)
    .bind(s.segment)
    .bind(&s.contacts)
    .bind(s.channel as i16)
    .bind(status as i16)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(())
}

/// A send with its counts per outcome.
pub async fn find_send(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Send>> {
    let row: Option<SendRow> = sqlx::query_as(&format!(
        "SELECT {SEND_COLUMNS} FROM sends WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut send = Send::from(row);
    count(tx, tenant, id, &mut send).await?;
    Ok(Some(send))
}

async fn count(tx: &mut PgConnection, tenant: Uuid, id: Uuid, send: &mut Send) -> sqlx::Result<()> {
    let rows: Vec<(i16, i16, i64)> = sqlx::query_as(
        "SELECT status, skip_reason, count(*) FROM send_recipients WHERE tenant_id = $1 AND send_id = $2 GROUP BY status, skip_reason",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(tx)
    .await?;
    let mut skipped = HashMap::new();
    for (status, reason, n) in rows {
        send.recipients += n;
        match RecipientStatus::try_from(i32::from(status)).unwrap_or_default() {
            RecipientStatus::Sent => send.sent += n,
            RecipientStatus::Failed => send.failed += n,
            RecipientStatus::Interrupted => send.interrupted += n,
            RecipientStatus::Cancelled => send.cancelled += n,
            RecipientStatus::Skipped => {
                let reason = SkipReason::try_from(i32::from(reason)).unwrap_or_default();
                *skipped.entry(reason.as_str_name().to_owned()).or_insert(0) += n;
            }
            _ => {}
        }
    }
    send.skipped = skipped;
    Ok(())
}

/// Newest first.
pub async fn list_sends(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Send>> {
    let rows: Vec<SendRow> = sqlx::query_as(&format!(
        "SELECT {SEND_COLUMNS} FROM sends WHERE tenant_id = $1 AND ($2::uuid IS NULL OR campaign_id = $2) \
         AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut sends = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id;
        let mut send = Send::from(row);
        count(tx, tenant, id, &mut send).await?;
        sends.push(send);
    }
    Ok(sends)
}

// ---- recipients

/// A recipient as resolved when the send is made.
pub struct NewRecipient {
    pub contact: Uuid,
    pub address: String,
    pub variables: serde_json::Value,
    /// None: queued; Some: skipped for this reason.
    pub skipped: Option<SkipReason>,
}

/// Stores the recipients, queued or skipped; queued ones wait for
/// [`schedule`]. Returns how many are queued.
pub async fn insert_recipients(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    recipients: &[NewRecipient],
) -> sqlx::Result<usize> {
    let ids: Vec<Uuid> = recipients.iter().map(|_| Uuid::now_v7()).collect();
    let contacts: Vec<Uuid> = recipients.iter().map(|r| r.contact).collect();
    let addresses: Vec<&str> = recipients.iter().map(|r| r.address.as_str()).collect();
    let variables: Vec<&serde_json::Value> = recipients.iter().map(|r| &r.variables).collect();
    let statuses: Vec<i16> = recipients
        .iter()
        .map(|r| match r.skipped {
            Some(_) => RecipientStatus::Skipped as i16,
            None => RecipientStatus::Queued as i16,
        })
        .collect();
    let reasons: Vec<i16> = recipients
        .iter()
        .map(|r| r.skipped.map(|s| s as i16).unwrap_or(0))
        .collect();
    sqlx::query(
        "INSERT INTO send_recipients (tenant_id, id, send_id, contact_id, address, variables, status, skip_reason) \
         SELECT $1, i, $2, c, a, v, s, r FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::jsonb[], $7::smallint[], $8::smallint[]) \
         AS t (i, c, a, v, s, r)",
    )
    .bind(tenant)
    .bind(send)
    .bind(&ids)
    .bind(&contacts)
    .bind(&addresses)
    .bind(&variables)
    .bind(&statuses)
    .bind(&reasons)
    .execute(&mut *tx)
    .await?;
    Ok(recipients.iter().filter(|r| r.skipped.is_none()).count())
}

/// Puts the send's queued recipients on the outbound queue, in the order
/// they were resolved, after the tenant's messages already waiting, `rate`
/// per second. Returns how many.
pub async fn schedule(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    rate: u32,
) -> sqlx::Result<u64> {
    let (queued,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM send_recipients WHERE tenant_id = $1 AND send_id = $2 AND status = $3",
    )
    .bind(tenant)
    .bind(send)
    .bind(RecipientStatus::Queued as i16)
    .fetch_one(&mut *tx)
    .await?;
    if queued == 0 {
        return Ok(0);
    }
    let spacing = 1.0 / f64::from(rate.max(1));
    let (start,): (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO send_slots (tenant_id, next_at) VALUES ($1, now() + make_interval(secs => $2 * $3)) \
         ON CONFLICT (tenant_id) DO UPDATE SET next_at = greatest(send_slots.next_at, now()) + make_interval(secs => $2 * $3) \
         RETURNING next_at - make_interval(secs => $2 * $3)",
    )
    .bind(tenant)
    .bind(queued as f64)
    .bind(spacing)
    .fetch_one(&mut *tx)
    .await?;
    let scheduled = sqlx::query(
        "INSERT INTO outbound_queue (tenant_id, recipient_id, send_id, due_at) \
         SELECT $1, id, $2, $3 + make_interval(secs => (row_number() OVER (ORDER BY id) - 1) * $4) \
         FROM send_recipients WHERE tenant_id = $1 AND send_id = $2 AND status = $5",
    )
    .bind(tenant)
    .bind(send)
    .bind(start)
    .bind(spacing)
    .bind(RecipientStatus::Queued as i16)
    .execute(tx)
    .await?;
    Ok(scheduled.rows_affected())
}

// ---- background resolution (ADR 0023)

/// Marks the send as being resolved by the caller until `lease` from now.
pub async fn lease_resolution(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    lease: Duration,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO send_resolutions (tenant_id, send_id, lease_until) VALUES ($1, $2, now() + make_interval(secs => $3)) \
         ON CONFLICT (tenant_id, send_id) DO UPDATE SET lease_until = excluded.lease_until",
    )
    .bind(tenant)
    .bind(send)
    .bind(lease.as_secs_f64())
    .execute(tx)
    .await?;
    Ok(())
}

/// Locks a send that is still resolving (false when it was cancelled or
/// its lease was reaped), so a page of recipients and the lease's renewal
/// commit together.
pub async fn still_resolving(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
) -> sqlx::Result<bool> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT s.id FROM sends s JOIN send_resolutions r ON r.tenant_id = s.tenant_id AND r.send_id = s.id \
         WHERE s.tenant_id = $1 AND s.id = $2 AND s.status = $3 FOR UPDATE OF s",
    )
    .bind(tenant)
    .bind(send)
    .bind(SendStatus::Resolving as i16)
    .fetch_optional(tx)
    .await?;
    Ok(found.is_some())
}

/// The whole audience is known: its queued recipients are scheduled and
/// the send is queued (or completed, with no one to send to).
pub async fn finish_resolution(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    rate: u32,
) -> sqlx::Result<()> {
    let scheduled = schedule(&mut *tx, tenant, send, rate).await?;
    let status = if scheduled == 0 {
        SendStatus::Completed
    } else {
        SendStatus::Queued
    };
    sqlx::query(
        "UPDATE sends SET status = $3, completed_at = CASE WHEN $3 = $4 THEN now() END, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(send)
    .bind(status as i16)
    .bind(SendStatus::Completed as i16)
    .execute(&mut *tx)
    .await?;
    release_resolution(tx, tenant, send).await
}

async fn release_resolution(tx: &mut PgConnection, tenant: Uuid, send: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM send_resolutions WHERE tenant_id = $1 AND send_id = $2")
        .bind(tenant)
        .bind(send)
        .execute(tx)
        .await?;
    Ok(())
}

/// The audience could not be resolved: the send is cancelled with the
/// reason, and the recipients found so far with it (none was queued).
/// False when it was no longer resolving.
pub async fn abandon_resolution(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    error: &str,
) -> sqlx::Result<bool> {
    let changed = sqlx::query(
        "UPDATE sends SET status = $3, error = $4, completed_at = now(), version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 AND status = $5",
    )
    .bind(tenant)
    .bind(send)
    .bind(SendStatus::Cancelled as i16)
    .bind(error)
    .bind(SendStatus::Resolving as i16)
    .execute(&mut *tx)
    .await?;
    cancel_queued(&mut *tx, tenant, send).await?;
    release_resolution(tx, tenant, send).await?;
    Ok(changed.rows_affected() > 0)
}

/// Resolutions whose lease ran out: their resolver stopped (a crash, or a
/// stop in the middle). Returns (tenant, send), the leases removed.
pub async fn expired_resolutions(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "DELETE FROM send_resolutions q USING (SELECT tenant_id, send_id FROM send_resolutions \
           WHERE lease_until < now() ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED) d \
         WHERE q.tenant_id = d.tenant_id AND q.send_id = d.send_id RETURNING q.tenant_id, q.send_id",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

#[derive(sqlx::FromRow)]
struct RecipientRow {
    id: Uuid,
    send_id: Uuid,
    contact_id: Uuid,
    address: String,
    status: i16,
    skip_reason: i16,
    error: String,
    attempts: i32,
    sent_at: Option<DateTime<Utc>>,
}

impl From<RecipientRow> for SendRecipient {
    fn from(r: RecipientRow) -> Self {
        SendRecipient {
            id: r.id.to_string(),
            send_id: r.send_id.to_string(),
            contact_id: r.contact_id.to_string(),
            address: r.address,
            status: r.status.into(),
            skip_reason: r.skip_reason.into(),
            error: r.error,
            attempts: r.attempts,
            sent_at: kit::time::to_optional_timestamp(r.sent_at),
        }
    }
}

/// In the order they were resolved.
pub async fn list_recipients(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    status: Option<i16>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<SendRecipient>> {
    let rows: Vec<RecipientRow> = sqlx::query_as(
        "SELECT id, send_id, contact_id, address, status, skip_reason, error, attempts, sent_at FROM send_recipients \
         WHERE tenant_id = $1 AND send_id = $2 AND ($3::smallint IS NULL OR status = $3) AND ($4::uuid IS NULL OR id > $4) \
         ORDER BY id LIMIT $5",
    )
    .bind(tenant)
    .bind(send)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(SendRecipient::from).collect())
}

/// Stops a send: queued recipients are cancelled and leave the queue;
/// those a sender holds finish. False when the send was already over.
/// Locks are taken in the senders' order (queue rows, recipients, the
/// send), so a cancel and a claim never wait for each other in a circle.
pub async fn cancel(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
    actor: &str,
) -> sqlx::Result<bool> {
    let open: Option<i16> = sqlx::query_scalar(
        "SELECT status FROM sends WHERE tenant_id = $1 AND id = $2 AND status IN ($3, $4, $5)",
    )
    .bind(tenant)
    .bind(send)
    .bind(SendStatus::Queued as i16)
    .bind(SendStatus::Sending as i16)
    .bind(SendStatus::Resolving as i16)
    .fetch_optional(&mut *tx)
    .await?;
    if open.is_none() {
        return Ok(false);
    }
    cancel_queued(&mut *tx, tenant, send).await?;
    let changed = sqlx::query(
        "UPDATE sends SET status = $3, completed_at = now(), updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 AND status IN ($5, $6, $7)",
    )
    .bind(tenant)
    .bind(send)
    .bind(SendStatus::Cancelled as i16)
    .bind(actor)
    .bind(SendStatus::Queued as i16)
    .bind(SendStatus::Sending as i16)
    .bind(SendStatus::Resolving as i16)
    .execute(&mut *tx)
    .await?;
    release_resolution(tx, tenant, send).await?;
    Ok(changed.rows_affected() > 0)
}

/// Queued recipients of the send leave the queue and are cancelled (queue
/// rows first, as the senders lock them); those a sender holds finish.
async fn cancel_queued(tx: &mut PgConnection, tenant: Uuid, send: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM outbound_queue WHERE tenant_id = $1 AND send_id = $2 AND claimed_until IS NULL",
    )
    .bind(tenant)
    .bind(send)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE send_recipients SET status = $3 WHERE tenant_id = $1 AND send_id = $2 AND status = $4",
    )
    .bind(tenant)
    .bind(send)
    .bind(RecipientStatus::Cancelled as i16)
    .bind(RecipientStatus::Queued as i16)
    .execute(tx)
    .await?;
    Ok(())
}

/// An erasure: the person's recipient rows keep their outcome but lose the
/// address and variables; messages still queued for them are cancelled.
/// Returns the sends that had one queued (they may be complete now).
pub async fn erase_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    let mut sends: Vec<Uuid> = sqlx::query_scalar(
        "SELECT send_id FROM send_recipients WHERE tenant_id = $1 AND contact_id = $2 AND status = $3",
    )
    .bind(tenant)
    .bind(contact)
    .bind(RecipientStatus::Queued as i16)
    .fetch_all(&mut *tx)
    .await?;
    sends.sort_unstable();
    sends.dedup();
    let cancelled: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE send_recipients SET status = CASE WHEN status = $3 THEN $4 ELSE status END, address = '', variables = '{}' \
         WHERE tenant_id = $1 AND contact_id = $2 RETURNING id",
    )
    .bind(tenant)
    .bind(contact)
    .bind(RecipientStatus::Queued as i16)
    .bind(RecipientStatus::Cancelled as i16)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM outbound_queue WHERE tenant_id = $1 AND recipient_id = ANY($2) AND claimed_until IS NULL",
    )
    .bind(tenant)
    .bind(&cancelled)
    .execute(tx)
    .await?;
    Ok(sends)
}

// ---- the senders' side: claims across tenants, outcomes per tenant

/// A claimed message, ready to render and send.
#[derive(Debug, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub send_id: Uuid,
    pub contact_id: Uuid,
    pub address: String,
    pub variables: serde_json::Value,
    pub attempts: i32,
}

/// Claims up to `limit` due messages of any tenant for `lease`, and marks
/// them sending, in one committed transaction: after it, a sender that
/// stops leaves them to [`reap`] (never sent twice).
pub async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
    lease: Duration,
) -> sqlx::Result<Vec<(Uuid, Claimed)>> {
    let due: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "UPDATE outbound_queue q SET claimed_until = now() + make_interval(secs => $2) \
         FROM (SELECT tenant_id, recipient_id FROM outbound_queue WHERE claimed_until IS NULL AND due_at <= now() \
               ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) d \
         WHERE q.tenant_id = d.tenant_id AND q.recipient_id = d.recipient_id \
         RETURNING q.tenant_id, q.recipient_id, q.send_id",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(&mut **tx)
    .await?;
    let mut by_tenant: HashMap<Uuid, (Vec<Uuid>, Vec<Uuid>)> = HashMap::new();
    for (tenant, recipient, send) in due {
        let entry = by_tenant.entry(tenant).or_default();
        entry.0.push(recipient);
        entry.1.push(send);
    }
    let mut claimed = Vec::new();
    for (tenant, (recipients, sends)) in by_tenant {
        kit::db::set_tenant(tx, tenant).await?;
        let rows: Vec<Claimed> = sqlx::query_as(
            "UPDATE send_recipients SET status = $3, attempts = attempts + 1 \
             WHERE tenant_id = $1 AND id = ANY($2) AND status = $4 \
             RETURNING id, send_id, contact_id, address, variables, attempts",
        )
        .bind(tenant)
        .bind(&recipients)
        .bind(RecipientStatus::Sending as i16)
        .bind(RecipientStatus::Queued as i16)
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE sends SET status = $3 WHERE tenant_id = $1 AND id = ANY($2) AND status = $4",
        )
        .bind(tenant)
        .bind(&sends)
        .bind(SendStatus::Sending as i16)
        .bind(SendStatus::Queued as i16)
        .execute(&mut **tx)
        .await?;
        claimed.extend(rows.into_iter().map(|row| (tenant, row)));
    }
    Ok(claimed)
}

/// What became of one claimed message.
pub enum Outcome {
    Sent,
    /// Not accepted for good (or retries ran out).
    Failed(String),
    /// Not accepted for now: queued again at `retry_at`.
    Retry(String, DateTime<Utc>),
}

/// Records one message's outcome inside its tenant's scope and takes it
/// off the queue (or schedules the retry).
pub async fn record(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: Uuid,
    outcome: &Outcome,
) -> sqlx::Result<()> {
    let (status, error, retry_at) = match outcome {
        Outcome::Sent => (RecipientStatus::Sent, "", None),
        Outcome::Failed(error) => (RecipientStatus::Failed, error.as_str(), None),
        Outcome::Retry(error, at) => (RecipientStatus::Queued, error.as_str(), Some(*at)),
    };
    sqlx::query(
        "UPDATE send_recipients SET status = $3, error = $4, sent_at = CASE WHEN $3 = $5 THEN now() END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(recipient)
    .bind(status as i16)
    .bind(error)
    .bind(RecipientStatus::Sent as i16)
    .execute(&mut *tx)
    .await?;
    match retry_at {
        Some(at) => {
            sqlx::query(
                "UPDATE outbound_queue SET claimed_until = NULL, due_at = $3 WHERE tenant_id = $1 AND recipient_id = $2",
            )
            .bind(tenant)
            .bind(recipient)
            .bind(at)
            .execute(tx)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM outbound_queue WHERE tenant_id = $1 AND recipient_id = $2")
                .bind(tenant)
                .bind(recipient)
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}

/// The recipient opened the message, or clicked in it (which opens it
/// too); the first time of each is kept.
pub async fn recipient_engaged(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: Uuid,
    clicked: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE send_recipients SET opened_at = coalesce(opened_at, now()), \
         clicked_at = CASE WHEN $3 THEN coalesce(clicked_at, now()) ELSE clicked_at END \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(recipient)
    .bind(clicked)
    .execute(tx)
    .await?;
    Ok(())
}

/// A campaign member reached `status` (sent, opened, clicked,
/// unsubscribed): it moves there unless it is further along already (the
/// statuses' numbers follow the funnel, endings last), and the first time
/// is kept.
pub async fn member_reached(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
    contact: Uuid,
    status: MemberStatus,
) -> sqlx::Result<()> {
    let Some(column) = crate::domain::member::reached_column(status) else {
        return Ok(());
    };
    sqlx::query(&format!(
        "UPDATE campaign_members SET status = greatest(status, $4), {column} = coalesce({column}, now()) \
         WHERE tenant_id = $1 AND campaign_id = $2 AND contact_id = $3"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(contact)
    .bind(status as i16)
    .execute(tx)
    .await?;
    Ok(())
}

/// Who a tracked link's recipient is.
#[derive(Debug, sqlx::FromRow)]
pub struct Reached {
    pub send_id: Uuid,
    /// The send's channel.
    pub channel: i16,
    pub contact_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub address: String,
    pub sender_name: Option<String>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

pub async fn reached(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Reached>> {
    let lock = if lock { " FOR UPDATE OF r" } else { "" };
    sqlx::query_as(&format!(
        "SELECT r.send_id, s.channel, r.contact_id, s.campaign_id, r.address, i.from_name AS sender_name, r.unsubscribed_at \
         FROM send_recipients r JOIN sends s ON s.tenant_id = r.tenant_id AND s.id = r.send_id \
         LEFT JOIN sender_identities i ON i.tenant_id = s.tenant_id AND i.id = s.sender_identity_id \
         WHERE r.tenant_id = $1 AND r.id = $2{lock}"
    ))
    .bind(tenant)
    .bind(recipient)
    .fetch_optional(tx)
    .await
}

/// Records a delivery report on a recipient; false when that kind was
/// recorded before (`delivered_at` or `bounced_at`).
pub async fn mark_reported(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: Uuid,
    bounce: Option<&str>,
) -> sqlx::Result<bool> {
    let sql = match bounce {
        None => "UPDATE send_recipients SET delivered_at = now() WHERE tenant_id = $1 AND id = $2 AND delivered_at IS NULL",
        Some(_) => "UPDATE send_recipients SET bounced_at = now(), bounce = $3 WHERE tenant_id = $1 AND id = $2 AND bounced_at IS NULL",
    };
    let done = sqlx::query(sql)
        .bind(tenant)
        .bind(recipient)
        .bind(bounce.unwrap_or_default())
        .execute(tx)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn mark_unsubscribed(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE send_recipients SET unsubscribed_at = now() WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(recipient)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks a send completed when no recipient is left queued or sending;
/// returns it (with counts) when this call completed it.
pub async fn complete_if_done(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
) -> sqlx::Result<Option<Send>> {
    let done: Option<Uuid> = sqlx::query_scalar(
        "UPDATE sends SET status = $3, completed_at = now(), version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 AND status IN ($4, $5) \
         AND NOT EXISTS (SELECT 1 FROM send_recipients r WHERE r.tenant_id = $1 AND r.send_id = $2 AND r.status IN ($6, $7)) \
         RETURNING id",
    )
    .bind(tenant)
    .bind(send)
    .bind(SendStatus::Completed as i16)
    .bind(SendStatus::Queued as i16)
    .bind(SendStatus::Sending as i16)
    .bind(RecipientStatus::Queued as i16)
    .bind(RecipientStatus::Sending as i16)
    .fetch_optional(&mut *tx)
    .await?;
    match done {
        Some(id) => find_send(tx, tenant, id).await,
        None => Ok(None),
    }
}

/// Claims whose lease ran out (their sender stopped between claiming and
/// recording): the messages may or may not have gone out, so they are
/// marked interrupted and never sent again. Returns (tenant, recipient, send).
pub async fn reap(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid, Uuid)>> {
    let expired: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "DELETE FROM outbound_queue q USING (SELECT tenant_id, recipient_id FROM outbound_queue \
           WHERE claimed_until < now() ORDER BY claimed_until LIMIT $1 FOR UPDATE SKIP LOCKED) d \
         WHERE q.tenant_id = d.tenant_id AND q.recipient_id = d.recipient_id \
         RETURNING q.tenant_id, q.recipient_id, q.send_id",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    for (tenant, recipient, _) in &expired {
        kit::db::set_tenant(tx, *tenant).await?;
        sqlx::query(
            "UPDATE send_recipients SET status = $3, error = 'the sender stopped before recording the outcome' \
             WHERE tenant_id = $1 AND id = $2 AND status = $4",
        )
        .bind(tenant)
        .bind(recipient)
        .bind(RecipientStatus::Interrupted as i16)
        .bind(RecipientStatus::Sending as i16)
        .execute(&mut **tx)
        .await?;
    }
    Ok(expired)
}

/// The template and identity of a send, for the sender.
pub async fn send_parts(
    tx: &mut PgConnection,
    tenant: Uuid,
    send: Uuid,
) -> sqlx::Result<Option<(Template, Option<SenderIdentity>, Option<Uuid>)>> {
    let row: Option<(Uuid, Option<Uuid>, Option<Uuid>)> = sqlx::query_as(
        "SELECT template_id, sender_identity_id, campaign_id FROM sends WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(send)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((template, identity, campaign)) = row else {
        return Ok(None);
    };
    let Some(template) = find_template(tx, tenant, template).await? else {
        return Ok(None);
    };
    let identity = match identity {
        Some(id) => identities(tx, tenant)
            .await?
            .into_iter()
            .find(|i| i.id == id.to_string()),
        None => None,
    };
    Ok(Some((template, identity, campaign)))
}
