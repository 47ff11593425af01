//! Campaign touches, attributed revenue and campaign performance.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::AttributionModel;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::attribution::Touch;

/// When each membership of `contacts` first engaged (opened, clicked,
/// responded or converted), if it did by `until`.
pub async fn touches(
    tx: &mut PgConnection,
    tenant: Uuid,
    contacts: &[Uuid],
    until: DateTime<Utc>,
) -> sqlx::Result<Vec<Touch>> {
    let rows: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT campaign_id, at FROM ( \
           SELECT campaign_id, least(opened_at, clicked_at, responded_at, converted_at) AS at \
           FROM campaign_members WHERE tenant_id = $1 AND contact_id = ANY($2)) m \
         WHERE at IS NOT NULL AND at <= $3",
    )
    .bind(tenant)
    .bind(contacts)
    .bind(until)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(campaign, at)| Touch { campaign, at })
        .collect())
}

/// The campaigns among `ids` that exist (shares go only to those).
pub async fn existing(
    tx: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM campaigns WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .fetch_all(tx)
        .await
}

/// Replaces a deal's shares (a deal won again after being reopened counts
/// once, as last won).
pub async fn replace(
    tx: &mut PgConnection,
    tenant: Uuid,
    opportunity: Uuid,
    currency: &str,
    won_at: DateTime<Utc>,
    shares: &[(AttributionModel, Uuid, Decimal)],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM attributions WHERE tenant_id = $1 AND opportunity_id = $2")
        .bind(tenant)
        .bind(opportunity)
        .execute(&mut *tx)
        .await?;
    let models: Vec<i16> = shares.iter().map(|(m, _, _)| *m as i16).collect();
    let campaigns: Vec<Uuid> = shares.iter().map(|(_, c, _)| *c).collect();
    let amounts: Vec<Decimal> = shares.iter().map(|(_, _, a)| *a).collect();
    sqlx::query(
        "INSERT INTO attributions (tenant_id, opportunity_id, model, campaign_id, amount, currency, won_at) \
         SELECT $1, $2, m, c, a, $3, $4 FROM unnest($5::smallint[], $6::uuid[], $7::numeric[]) AS t (m, c, a)",
    )
    .bind(tenant)
    .bind(opportunity)
    .bind(currency)
    .bind(won_at)
    .bind(&models)
    .bind(&campaigns)
    .bind(&amounts)
    .execute(tx)
    .await?;
    Ok(())
}

/// Attributed revenue of a campaign: (model, currency, revenue, deals).
pub async fn revenue(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
) -> sqlx::Result<Vec<(i16, String, Decimal, i64)>> {
    sqlx::query_as(
        "SELECT model, currency, sum(amount), count(*) FROM attributions \
         WHERE tenant_id = $1 AND campaign_id = $2 GROUP BY model, currency ORDER BY model, currency",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_all(tx)
    .await
}

/// Members, and how many were sent to, opened, clicked, responded.
pub async fn funnel(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
) -> sqlx::Result<(i64, i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), count(sent_at), count(opened_at), count(clicked_at), count(responded_at) \
         FROM campaign_members WHERE tenant_id = $1 AND campaign_id = $2",
    )
    .bind(tenant)
    .bind(campaign)
    .fetch_one(tx)
    .await
}
