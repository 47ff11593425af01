//! The consent replica and the suppression lists.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{ChannelConsent, Suppression};
use sqlx::PgConnection;
use uuid::Uuid;

/// Records a contact's consent on a channel as of `changed_at`; an older
/// state arriving late changes nothing.
pub async fn record(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    channel: i32,
    status: i32,
    source: &str,
    changed_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO contact_consents (tenant_id, contact_id, channel, status, source, changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, contact_id, channel) DO UPDATE \
         SET status = EXCLUDED.status, source = EXCLUDED.source, changed_at = EXCLUDED.changed_at \
         WHERE contact_consents.changed_at <= EXCLUDED.changed_at",
    )
    .bind(tenant)
    .bind(contact)
    .bind(i16::try_from(channel).unwrap_or_default())
    .bind(i16::try_from(status).unwrap_or_default())
    .bind(source)
    .bind(changed_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn of_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    channel: i32,
) -> sqlx::Result<Option<ChannelConsent>> {
    let row: Option<(i16, i16, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT channel, status, source, changed_at FROM contact_consents \
         WHERE tenant_id = $1 AND contact_id = $2 AND channel = $3",
    )
    .bind(tenant)
    .bind(contact)
    .bind(i16::try_from(channel).unwrap_or_default())
    .fetch_optional(tx)
    .await?;
    Ok(
        row.map(|(channel, status, source, changed_at)| ChannelConsent {
            channel: channel.into(),
            status: status.into(),
            source,
            changed_at: Some(kit::time::to_timestamp(changed_at)),
        }),
    )
}

/// The replica's consent on `channel` of each of `contacts` that has one.
pub async fn of_contacts(
    tx: &mut PgConnection,
    tenant: Uuid,
    contacts: &[Uuid],
    channel: i32,
) -> sqlx::Result<std::collections::HashMap<Uuid, ChannelConsent>> {
    let rows: Vec<(Uuid, i16, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT contact_id, status, source, changed_at FROM contact_consents \
         WHERE tenant_id = $1 AND contact_id = ANY($2) AND channel = $3",
    )
    .bind(tenant)
    .bind(contacts)
    .bind(i16::try_from(channel).unwrap_or_default())
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(contact, status, source, changed_at)| {
            let consent = ChannelConsent {
                channel,
                status: status.into(),
                source,
                changed_at: Some(kit::time::to_timestamp(changed_at)),
            };
            (contact, consent)
        })
        .collect())
}

/// A merged or erased contact's consent goes (the survivor's comes with
/// its own update event).
pub async fn forget(tx: &mut PgConnection, tenant: Uuid, contact: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM contact_consents WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(contact)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SuppressionRow {
    id: Uuid,
    channel: i16,
    address: String,
    reason: i16,
    note: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

impl From<SuppressionRow> for Suppression {
    fn from(r: SuppressionRow) -> Self {
        Suppression {
            id: r.id.to_string(),
            channel: r.channel.into(),
            address: r.address,
            reason: r.reason.into(),
            note: r.note,
            created_at: Some(kit::time::to_timestamp(r.created_at)),
            created_by: r.created_by,
        }
    }
}

const SUPPRESSION_COLUMNS: &str = "id, channel, address, reason, note, created_at, created_by";

/// Suppresses an address; an address already suppressed keeps its entry,
/// which is returned.
pub async fn suppress(
    tx: &mut PgConnection,
    tenant: Uuid,
    s: &Suppression,
    actor: &str,
) -> sqlx::Result<Suppression> {
    let row: SuppressionRow = sqlx::query_as(&format!(
        "WITH new AS ( \
           INSERT INTO suppressions (tenant_id, id, channel, address, reason, note, created_by) \
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, channel, address) DO NOTHING \
           RETURNING {SUPPRESSION_COLUMNS}) \
         SELECT {SUPPRESSION_COLUMNS} FROM new \
         UNION ALL SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 AND channel = $3 AND address = $4 \
         LIMIT 1"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(i16::try_from(s.channel).unwrap_or_default())
    .bind(&s.address)
    .bind(i16::try_from(s.reason).unwrap_or_default())
    .bind(&s.note)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Records a hard bounce for every tenant, by the address's hash.
pub async fn suppress_everywhere(
    tx: &mut PgConnection,
    channel: i32,
    address: &str,
    reason: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO global_suppressions (channel, address_hash, reason) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(i16::try_from(channel).unwrap_or_default())
    .bind(kit::events::address_hash(address))
    .bind(i16::try_from(reason).unwrap_or_default())
    .execute(tx)
    .await?;
    Ok(())
}

/// Which of `addresses` (normalised) are suppressed on `channel`, for the
/// tenant (also as an erased entry, which keeps only the address's hash)
/// or for everyone.
pub async fn suppressed(
    tx: &mut PgConnection,
    tenant: Uuid,
    channel: i32,
    addresses: &[String],
) -> sqlx::Result<Vec<String>> {
    let global: Vec<String> = addresses
        .iter()
        .map(|a| kit::events::address_hash(a))
        .collect();
    let erased: Vec<String> = addresses
        .iter()
        .map(|a| format!("{ERASED}{}", kit::events::contact_point_hash(tenant, a)))
        .collect();
    sqlx::query_scalar(
        "SELECT a FROM unnest($3::text[], $4::text[], $5::text[]) AS t (a, h, e) \
         WHERE EXISTS (SELECT 1 FROM suppressions s WHERE s.tenant_id = $1 AND s.channel = $2 AND s.address IN (t.a, t.e)) \
            OR EXISTS (SELECT 1 FROM global_suppressions g WHERE g.channel = $2 AND g.address_hash = t.h)",
    )
    .bind(tenant)
    .bind(i16::try_from(channel).unwrap_or_default())
    .bind(addresses)
    .bind(&global)
    .bind(&erased)
    .fetch_all(tx)
    .await
}

/// How an erased person's suppressed address is kept: their address is
/// gone, yet a later import of it is still recognised and not mailed.
const ERASED: &str = "erased:";

/// An erasure: the person's suppressed addresses (found by the hashes the
/// erasure event carries) keep only their hash, and their notes go.
pub async fn erase_addresses(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact_point_hashes: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE suppressions SET address = $3 || encode(sha256(convert_to(tenant_id::text || ':' || address, 'UTF8')), 'hex'), note = '' \
         WHERE tenant_id = $1 AND address NOT LIKE 'erased:%' \
         AND encode(sha256(convert_to(tenant_id::text || ':' || address, 'UTF8')), 'hex') = ANY($2)",
    )
    .bind(tenant)
    .bind(contact_point_hashes)
    .bind(ERASED)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Default)]
pub struct SuppressionFilter {
    pub channel: Option<i16>,
    pub reason: Option<i16>,
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    filter: &SuppressionFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Suppression>> {
    let rows: Vec<SuppressionRow> = sqlx::query_as(&format!(
        "SELECT {SUPPRESSION_COLUMNS} FROM suppressions WHERE tenant_id = $1 \
         AND ($2::smallint IS NULL OR channel = $2) AND ($3::smallint IS NULL OR reason = $3) \
         AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(filter.channel)
    .bind(filter.reason)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Suppression::from).collect())
}

/// Lifts a suppression; false when there was none with that id.
pub async fn delete(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM suppressions WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(done.rows_affected() > 0)
}
