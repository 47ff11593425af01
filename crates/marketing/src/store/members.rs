//! Campaign members: contacts and leads with their progress.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{CampaignMember, MemberStatus};
use sqlx::PgConnection;
use uuid::Uuid;

use super::id_text;
use crate::domain::member::reached_column;

const COLUMNS: &str = "id, campaign_id, contact_id, lead_id, status, added_at, sent_at, opened_at, clicked_at, responded_at, converted_at, unsubscribed_at, bounced_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    campaign_id: Uuid,
    contact_id: Option<Uuid>,
    lead_id: Option<Uuid>,
    status: i16,
    added_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    opened_at: Option<DateTime<Utc>>,
    clicked_at: Option<DateTime<Utc>>,
    responded_at: Option<DateTime<Utc>>,
    converted_at: Option<DateTime<Utc>>,
    unsubscribed_at: Option<DateTime<Utc>>,
    bounced_at: Option<DateTime<Utc>>,
}

impl From<Row> for CampaignMember {
    fn from(r: Row) -> Self {
        use kit::time::to_optional_timestamp as at;
        CampaignMember {
            id: r.id.to_string(),
            campaign_id: r.campaign_id.to_string(),
            contact_id: id_text(r.contact_id),
            lead_id: id_text(r.lead_id),
            status: r.status.into(),
            added_at: Some(kit::time::to_timestamp(r.added_at)),
            sent_at: at(r.sent_at),
            opened_at: at(r.opened_at),
            clicked_at: at(r.clicked_at),
            responded_at: at(r.responded_at),
            converted_at: at(r.converted_at),
            unsubscribed_at: at(r.unsubscribed_at),
            bounced_at: at(r.bounced_at),
        }
    }
}

/// Who a member is: a contact of the customers service or a lead of sales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Person {
    Contact,
    Lead,
}

impl Person {
    fn column(self) -> &'static str {
        match self {
            Person::Contact => "contact_id",
            Person::Lead => "lead_id",
        }
    }
}

/// Adds the people not yet members, as targeted, in one statement;
/// returns the members made (those already members are skipped).
pub async fn add(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
    person: Person,
    ids: &[Uuid],
) -> sqlx::Result<Vec<CampaignMember>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let member_ids: Vec<Uuid> = ids.iter().map(|_| Uuid::now_v7()).collect();
    let column = person.column();
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "INSERT INTO campaign_members (tenant_id, id, campaign_id, {column}, status) \
         SELECT $1, m, $2, p, $5 FROM unnest($3::uuid[], $4::uuid[]) AS t (m, p) \
         ON CONFLICT (tenant_id, campaign_id, {column}) WHERE {column} IS NOT NULL DO NOTHING \
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(&member_ids)
    .bind(ids)
    .bind(MemberStatus::Targeted as i16)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(CampaignMember::from).collect())
}

pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<CampaignMember>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaign_members WHERE tenant_id = $1 AND campaign_id = $2 AND id = $3{lock}"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(CampaignMember::from))
}

/// In the order they were added.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
    status: Option<i16>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<CampaignMember>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaign_members WHERE tenant_id = $1 AND campaign_id = $2 \
         AND ($3::smallint IS NULL OR status = $3) AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(CampaignMember::from).collect())
}

/// The contacts among a campaign's members, in the order they were added.
pub async fn contact_ids(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT contact_id FROM campaign_members WHERE tenant_id = $1 AND campaign_id = $2 AND contact_id IS NOT NULL ORDER BY id",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_all(tx)
    .await
}

/// Sets the status (already advanced by the domain rule) and, the first
/// time, when `reached` was reached.
pub async fn set_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: MemberStatus,
    reached: MemberStatus,
    at: DateTime<Utc>,
) -> sqlx::Result<CampaignMember> {
    let stamp = reached_column(reached)
        .map(|column| format!(", {column} = coalesce({column}, $4)"))
        .unwrap_or_default();
    let row: Row = sqlx::query_as(&format!(
        "UPDATE campaign_members SET status = $3{stamp} WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(at)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn remove(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM campaign_members WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A merge: the merged contact's memberships move to the survivor, except
/// in campaigns the survivor is already in (there the survivor's stays).
pub async fn repoint_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM campaign_members m WHERE tenant_id = $1 AND contact_id = $2 \
         AND EXISTS (SELECT 1 FROM campaign_members s WHERE s.tenant_id = $1 AND s.campaign_id = m.campaign_id AND s.contact_id = $3)",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE campaign_members SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(tx)
    .await?;
    Ok(())
}

/// An erasure: the person's memberships go.
pub async fn remove_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query("DELETE FROM campaign_members WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(contact)
        .execute(tx)
        .await?;
    Ok(done.rows_affected())
}
