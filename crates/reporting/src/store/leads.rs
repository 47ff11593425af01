//! Leads as projected (source, owner, when created, first answered and
//! converted) and the lead figures of the sales dashboard.

use chrono::{DateTime, Utc};
use crm_proto::crm::sales::v1::{Lead, LeadAssigned};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{id, time, within, Selection};
use crate::domain::Period;

/// A lead as created; a redelivered creation changes nothing.
pub async fn created(
    tx: &mut PgConnection,
    tenant: Uuid,
    l: &Lead,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let created_at = time(l.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    insert(tx, tenant, l, created_at, None, "DO NOTHING").await
}

/// A lead as sales has it now (a backfill): inserted, or its owner,
/// team, campaign, region and conversion taken from the snapshot. Its
/// first response stays what the events said, or the conversion if
/// earlier.
pub async fn snapshot(tx: &mut PgConnection, tenant: Uuid, l: &Lead) -> sqlx::Result<()> {
    let Some(created_at) = time(l.audit.as_ref().and_then(|a| a.created_at.as_ref())) else {
        return Ok(());
    };
    insert(
        tx,
        tenant,
        l,
        created_at,
        time(l.converted_at.as_ref()),
        "DO UPDATE SET source = EXCLUDED.source, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, \
         campaign_id = EXCLUDED.campaign_id, region = EXCLUDED.region, \
         converted_at = coalesce(leads.converted_at, EXCLUDED.converted_at), \
         first_response_at = least(leads.first_response_at, EXCLUDED.converted_at)",
    )
    .await
}

/// Inserts the lead (converted, and so first answered, at `converted_at`),
/// doing `on_conflict` (this module's SQL) when it is known.
async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    l: &Lead,
    created_at: DateTime<Utc>,
    converted_at: Option<DateTime<Utc>>,
    on_conflict: &str,
) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "INSERT INTO leads (tenant_id, id, source, owner_id, team_id, campaign_id, region, created_at, converted_at, first_response_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (tenant_id, id) {on_conflict}"
    ))
    .bind(tenant)
    .bind(id(&l.id))
    .bind(l.source as i16)
    .bind(id(&l.owner_id))
    .bind(id(&l.team_id))
    .bind(id(&l.campaign_id))
    .bind(l.region.trim())
    .bind(created_at)
    .bind(converted_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn assigned(tx: &mut PgConnection, tenant: Uuid, a: &LeadAssigned) -> sqlx::Result<()> {
    sqlx::query("UPDATE leads SET owner_id = $3, team_id = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(&a.lead_id))
        .bind(id(&a.owner_id))
        .bind(id(&a.team_id))
        .execute(tx)
        .await?;
    Ok(())
}

/// Someone answered the lead at `at` (an activity about it, its
/// qualification or conversion): the first answer counts.
pub async fn answered(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE leads SET first_response_at = least(first_response_at, $3) WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(lead)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn converted(
    tx: &mut PgConnection,
    tenant: Uuid,
    lead: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE leads SET converted_at = coalesce(converted_at, $3), first_response_at = least(first_response_at, $3) \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(lead)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Which leads count: the selection, in one region (the lead's own
/// territory) when named.
#[derive(Clone, Copy)]
pub struct Leads<'a> {
    pub selection: Selection<'a>,
    pub region: Option<&'a str>,
}

impl Leads<'_> {
    fn push_from(&self, query: &mut QueryBuilder<'_, Postgres>) {
        self.selection.push_from(query, "leads");
        if let Some(region) = self.region {
            query.push(" AND region = ").push_bind(region.to_owned());
        }
    }
}

/// Leads created in the period from one source: how many, how many were
/// converted, and what the deals they became won (in `currency`).
#[derive(sqlx::FromRow)]
pub struct SourceFigures {
    pub source: i16,
    pub leads: i64,
    pub converted: i64,
    pub won_amount: Decimal,
}

pub async fn by_source(
    tx: &mut PgConnection,
    s: &Leads<'_>,
    currency: &str,
    p: Period,
) -> sqlx::Result<Vec<SourceFigures>> {
    let mut query = QueryBuilder::new(
        "SELECT l.source, count(*) AS leads, count(l.converted_at) AS converted, coalesce(sum(w.amount), 0) AS won_amount \
         FROM (SELECT tenant_id, id, source, converted_at",
    );
    s.push_from(&mut query);
    query.push(" AND ");
    within(&mut query, "created_at", p);
    query.push(
        ") l LEFT JOIN deals w ON w.tenant_id = l.tenant_id AND w.lead_id = l.id AND w.status = 2 AND w.currency = ",
    );
    query.push_bind(currency.to_owned());
    query.push(" GROUP BY l.source ORDER BY 2 DESC, 1");
    query.build_query_as().fetch_all(tx).await
}

/// The median time from a lead's creation to its first answer, over the
/// leads created in the period that were answered (seconds).
pub async fn median_response(
    tx: &mut PgConnection,
    s: &Leads<'_>,
    p: Period,
) -> sqlx::Result<Option<f64>> {
    let mut query = QueryBuilder::new(
        "SELECT (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at)))::float8",
    );
    s.push_from(&mut query);
    query.push(" AND first_response_at IS NOT NULL AND ");
    within(&mut query, "created_at", p);
    query.build_query_scalar().fetch_one(tx).await
}
