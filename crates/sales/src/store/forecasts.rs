//! Quotas and forecast sums.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use uuid::Uuid;

pub struct QuotaValues {
    pub user: Option<Uuid>,
    pub team: Option<Uuid>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub amount: Decimal,
    pub currency: String,
}

pub async fn set_quota(tx: &mut PgConnection, tenant: Uuid, q: &QuotaValues) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO quotas (tenant_id, id, user_id, team_id, period_start, period_end, amount, currency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, coalesce(user_id, team_id), period_start, period_end, currency) DO UPDATE SET amount = EXCLUDED.amount",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(q.user)
    .bind(q.team)
    .bind(q.start)
    .bind(q.end)
    .bind(q.amount)
    .bind(&q.currency)
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow, Default)]
pub struct Sums {
    pub closed_won: Decimal,
    pub commit: Decimal,
    pub best_case: Decimal,
    pub pipeline: Decimal,
    pub weighted: Decimal,
    pub open_count: i64,
    pub won_count: i64,
}

pub struct ForecastQuery {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
    pub currency: String,
    /// Visibility of the caller: own id / team ids, None = whole tenant.
    pub visible_owner: Option<Uuid>,
    pub visible_teams: Option<Vec<Uuid>>,
}

/// One pass over the period's opportunities (index on close_date). Commit
/// includes best case includes pipeline, as sales teams read them; omitted
/// counts nowhere but in its own category.
pub async fn sums(tx: &mut PgConnection, tenant: Uuid, q: &ForecastQuery) -> sqlx::Result<Sums> {
    sqlx::query_as(
        "SELECT \
           coalesce(sum(amount) FILTER (WHERE status = 2), 0) AS closed_won, \
           coalesce(sum(amount) FILTER (WHERE status = 1 AND forecast_category = 3), 0) AS commit, \
           coalesce(sum(amount) FILTER (WHERE status = 1 AND forecast_category IN (2, 3)), 0) AS best_case, \
           coalesce(sum(amount) FILTER (WHERE status = 1 AND forecast_category IN (1, 2, 3)), 0) AS pipeline, \
           coalesce(sum(amount * probability / 100) FILTER (WHERE status = 1 AND forecast_category IN (1, 2, 3)), 0) AS weighted, \
           count(*) FILTER (WHERE status = 1) AS open_count, \
           count(*) FILTER (WHERE status = 2) AS won_count \
         FROM opportunities \
         WHERE tenant_id = $1 AND close_date BETWEEN $2 AND $3 AND currency = $4 \
           AND ($5::uuid IS NULL OR owner_id = $5) AND ($6::uuid IS NULL OR team_id = $6) \
           AND ($7::uuid IS NULL AND $8::uuid[] IS NULL OR owner_id = $7 OR team_id = ANY($8))",
    )
    .bind(tenant)
    .bind(q.start)
    .bind(q.end)
    .bind(&q.currency)
    .bind(q.owner)
    .bind(q.team)
    .bind(q.visible_owner)
    .bind(q.visible_teams.as_ref())
    .fetch_one(tx)
    .await
}

/// Sum of the quotas of the owner or team whose period overlaps, among the
/// quotas the caller may see (its own, its teams'); None if none.
pub async fn quota(
    tx: &mut PgConnection,
    tenant: Uuid,
    q: &ForecastQuery,
) -> sqlx::Result<Option<Decimal>> {
    let (sum,): (Option<Decimal>,) = sqlx::query_as(
        "SELECT sum(amount) FROM quotas WHERE tenant_id = $1 AND currency = $4 AND period_start <= $3 AND period_end >= $2 \
         AND (($5::uuid IS NOT NULL AND user_id = $5) OR ($6::uuid IS NOT NULL AND team_id = $6) OR ($5::uuid IS NULL AND $6::uuid IS NULL AND team_id IS NOT NULL)) \
         AND ($7::uuid[] IS NULL OR user_id = $8 OR team_id = ANY($7))",
    )
    .bind(tenant)
    .bind(q.start)
    .bind(q.end)
    .bind(&q.currency)
    .bind(q.owner)
    .bind(q.team)
    .bind(&q.visible_teams)
    .bind(q.visible_owner)
    .fetch_one(tx)
    .await?;
    Ok(sum)
}
