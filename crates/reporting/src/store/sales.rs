//! Sales as projected (pipelines, deals with their stage history and won
//! lines, quotas) and the sales dashboard's figures over them.

use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use crm_proto::crm::sales::v1::{
    Opportunity, OpportunityLost, OpportunityStatus, OpportunityWon, PipelineChanged, Quota,
};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{id, time, Days, Rolled, Selection};
use crate::domain::Period;

/// An exact amount from an event; malformed is zero (the source checks it).
fn decimal(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap_or_default()
}

/// A pipeline as it now is: its stages in order replace the ones known; a
/// removed stage's deals and history move where the source moved them.
pub async fn pipeline_changed(
    tx: &mut PgConnection,
    tenant: Uuid,
    changed: &PipelineChanged,
) -> sqlx::Result<()> {
    let Some(p) = &changed.pipeline else {
        return Ok(());
    };
    let Some(pipeline) = id(&p.id) else {
        return Ok(());
    };
    if p.is_default {
        sqlx::query("UPDATE pipelines SET is_default = false WHERE tenant_id = $1 AND id <> $2")
            .bind(tenant)
            .bind(pipeline)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO pipelines (tenant_id, id, name, is_default) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, is_default = EXCLUDED.is_default",
    )
    .bind(tenant)
    .bind(pipeline)
    .bind(&p.name)
    .bind(p.is_default)
    .execute(&mut *tx)
    .await?;
    if let (Some(from), Some(to)) = (
        id(&changed.removed_stage_id),
        id(&changed.moved_to_stage_id),
    ) {
        sqlx::query("UPDATE deals SET stage_id = $3 WHERE tenant_id = $1 AND stage_id = $2")
            .bind(tenant)
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO deal_stages (tenant_id, deal_id, stage_id, entered_at) \
             SELECT tenant_id, deal_id, $3, entered_at FROM deal_stages WHERE tenant_id = $1 AND stage_id = $2 \
             ON CONFLICT (tenant_id, deal_id, stage_id) DO UPDATE SET entered_at = least(deal_stages.entered_at, EXCLUDED.entered_at)",
        )
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM deal_stages WHERE tenant_id = $1 AND stage_id = $2")
            .bind(tenant)
            .bind(from)
            .execute(&mut *tx)
            .await?;
    }
    let stages: Vec<_> = p
        .stages
        .iter()
        .filter_map(|s| Some((id(&s.id)?, s)))
        .collect();
    let ids: Vec<Uuid> = stages.iter().map(|(id, _)| *id).collect();
    sqlx::query("DELETE FROM stages WHERE tenant_id = $1 AND pipeline_id = $2 AND id <> ALL($3)")
        .bind(tenant)
        .bind(pipeline)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    for (position, (stage, s)) in stages.iter().enumerate() {
        sqlx::query(
            "INSERT INTO stages (tenant_id, id, pipeline_id, name, position, kind, probability) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name, position = EXCLUDED.position, probability = EXCLUDED.probability",
        )
        .bind(tenant)
        .bind(stage)
        .bind(pipeline)
        .bind(&s.name)
        .bind(position as i32)
        .bind(s.kind as i16)
        .bind(s.probability)
        .execute(&mut *tx)
        .await?;
    }
    // Positions and kinds may have changed: how far each deal of the
    // pipeline (or with history in it) got, again.
    let mut touched = ids;
    touched.extend(id(&changed.removed_stage_id));
    sqlx::query(&format!(
        "UPDATE deals d SET furthest = r.furthest FROM (SELECT d.id, {} AS furthest FROM deals d \
         WHERE d.tenant_id = $1 AND (d.pipeline_id = $2 OR d.id IN (SELECT deal_id FROM deal_stages WHERE tenant_id = $1 AND stage_id = ANY($3)))) r \
         WHERE d.tenant_id = $1 AND d.id = r.id AND d.furthest IS DISTINCT FROM r.furthest",
        furthest("d.tenant_id", "d.id")
    ))
    .bind(tenant)
    .bind(pipeline)
    .bind(&touched)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A deal as the source now has it (created, updated or moved at `at`, at
/// the source's `version`): inserted when new, its fields replaced when
/// known and not newer than this; its creation time stays the first one
/// seen.
pub async fn deal(
    tx: &mut PgConnection,
    tenant: Uuid,
    o: &Opportunity,
    at: DateTime<Utc>,
    version: i64,
) -> sqlx::Result<()> {
    let Some(deal) = id(&o.id) else {
        return Ok(());
    };
    let created_at = time(o.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    let closed =
        o.status == OpportunityStatus::Won as i32 || o.status == OpportunityStatus::Lost as i32;
    let closed_at = closed.then(|| time(o.closed_at.as_ref()).unwrap_or(at));
    let amount = o.amount.clone().unwrap_or_default();
    let competitors: Vec<&str> = o.competitors.iter().map(String::as_str).collect();
    let entered_now = entered(tx, tenant, deal, id(&o.stage_id), at).await?;
    let written = sqlx::query(&format!(
        "INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, account_id, owner_id, team_id, campaign_id, lead_id, status, \
         amount, currency, probability, close_date, lost_reason, competitors, created_at, closed_at, version, region, furthest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
         (SELECT region FROM accounts WHERE tenant_id = $1 AND id = $5), {}) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET pipeline_id = EXCLUDED.pipeline_id, stage_id = EXCLUDED.stage_id, \
         account_id = EXCLUDED.account_id, region = EXCLUDED.region, furthest = EXCLUDED.furthest, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, \
         campaign_id = EXCLUDED.campaign_id, lead_id = EXCLUDED.lead_id, status = EXCLUDED.status, amount = EXCLUDED.amount, \
         currency = EXCLUDED.currency, probability = EXCLUDED.probability, close_date = EXCLUDED.close_date, \
         lost_reason = EXCLUDED.lost_reason, competitors = EXCLUDED.competitors, \
         closed_at = CASE WHEN EXCLUDED.closed_at IS NULL THEN NULL ELSE coalesce(deals.closed_at, EXCLUDED.closed_at) END, \
         version = EXCLUDED.version WHERE deals.version <= EXCLUDED.version",
        furthest("$1", "$2")
    ))
    .bind(tenant)
    .bind(deal)
    .bind(id(&o.pipeline_id))
    .bind(id(&o.stage_id))
    .bind(id(&o.account_id))
    .bind(id(&o.owner_id))
    .bind(id(&o.team_id))
    .bind(id(&o.campaign_id))
    .bind(id(&o.lead_id))
    .bind(o.status as i16)
    .bind(decimal(&amount.amount))
    .bind(&amount.currency)
    .bind(o.probability)
    .bind(NaiveDate::parse_from_str(&o.close_date, "%Y-%m-%d").ok())
    .bind(&o.lost_reason)
    .bind(&competitors)
    .bind(created_at)
    .bind(closed_at)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if written.rows_affected() == 0 && entered_now {
        refresh_furthest(tx, tenant, deal).await?;
    }
    Ok(())
}

/// The deal is in `stage` since `at`, if it never was before: whether it
/// is new (the deal's `furthest` then wants computing again).
pub async fn entered(
    tx: &mut PgConnection,
    tenant: Uuid,
    deal: Uuid,
    stage: Option<Uuid>,
    at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let Some(stage) = stage else {
        return Ok(false);
    };
    let new = sqlx::query(
        "INSERT INTO deal_stages (tenant_id, deal_id, stage_id, entered_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, deal_id, stage_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(deal)
    .bind(stage)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(new.rows_affected() > 0)
}

/// The furthest open stage position (the funnel's reach) the deal
/// `deal` of `tenant` entered, as its stage history and the stages'
/// order now say: a subquery over SQL expressions of this module.
fn furthest(tenant: &str, deal: &str) -> String {
    format!(
        "(SELECT max(s.position) FROM deal_stages ds JOIN stages s ON s.tenant_id = ds.tenant_id AND s.id = ds.stage_id \
         WHERE ds.tenant_id = {tenant} AND ds.deal_id = {deal} AND s.kind = 1)"
    )
}

/// The deal's `furthest` computed again (a stage entered by an event
/// older than the deal's version).
async fn refresh_furthest(tx: &mut PgConnection, tenant: Uuid, deal: Uuid) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "UPDATE deals d SET furthest = f.furthest FROM (SELECT {} AS furthest) f \
         WHERE d.tenant_id = $1 AND d.id = $2 AND d.furthest IS DISTINCT FROM f.furthest",
        furthest("$1", "$2")
    ))
    .bind(tenant)
    .bind(deal)
    .execute(tx)
    .await?;
    Ok(())
}

/// The region of the account's deals (what the dashboards' region filter
/// reads) after the account changed, was deleted or took over another's
/// deals.
pub async fn account_region(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deals d SET region = a.region FROM (SELECT (SELECT region FROM accounts WHERE tenant_id = $1 AND id = $2) AS region) a \
         WHERE d.tenant_id = $1 AND d.account_id = $2 AND d.region IS DISTINCT FROM a.region",
    )
    .bind(tenant)
    .bind(account)
    .execute(tx)
    .await?;
    Ok(())
}

/// A move published before moves carried the deal whole: the stage only.
pub async fn moved(
    tx: &mut PgConnection,
    tenant: Uuid,
    deal: &str,
    stage: &str,
    probability: i32,
    at: DateTime<Utc>,
    version: i64,
) -> sqlx::Result<()> {
    let Some(deal) = id(deal) else {
        return Ok(());
    };
    let entered_now = entered(tx, tenant, deal, id(stage), at).await?;
    let found = sqlx::query(&format!(
        "UPDATE deals SET stage_id = $3, probability = $4, version = $5, furthest = {} \
         WHERE tenant_id = $1 AND id = $2 AND version <= $5",
        furthest("$1", "$2")
    ))
    .bind(tenant)
    .bind(deal)
    .bind(id(stage))
    .bind(probability)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if found.rows_affected() == 0 && entered_now {
        refresh_furthest(tx, tenant, deal).await?;
    }
    Ok(())
}

/// A win: its amount and line items as won. The deal's own event (created
/// or moved) carries the rest.
pub async fn won(
    tx: &mut PgConnection,
    tenant: Uuid,
    w: &OpportunityWon,
    at: DateTime<Utc>,
    version: i64,
) -> sqlx::Result<()> {
    let Some(deal) = id(&w.opportunity_id) else {
        return Ok(());
    };
    let amount = w.amount.clone().unwrap_or_default();
    let found = sqlx::query(
        "UPDATE deals SET status = 2, amount = $3, currency = $4, closed_at = coalesce(closed_at, $5), version = $6 \
         WHERE tenant_id = $1 AND id = $2 AND version <= $6",
    )
    .bind(tenant)
    .bind(deal)
    .bind(decimal(&amount.amount))
    .bind(&amount.currency)
    .bind(at)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    if found.rows_affected() == 0 {
        return Ok(());
    }
    sqlx::query("DELETE FROM deal_lines WHERE tenant_id = $1 AND deal_id = $2")
        .bind(tenant)
        .bind(deal)
        .execute(&mut *tx)
        .await?;
    for (line, item) in w.line_items.iter().enumerate() {
        let total = item.total.clone().unwrap_or_default();
        sqlx::query(
            "INSERT INTO deal_lines (tenant_id, deal_id, line, product_id, description, total, currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(deal)
        .bind(line as i32)
        .bind(id(&item.product_id))
        .bind(&item.description)
        .bind(decimal(&total.amount))
        .bind(&total.currency)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub async fn lost(
    tx: &mut PgConnection,
    tenant: Uuid,
    l: &OpportunityLost,
    at: DateTime<Utc>,
    version: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE deals SET status = 3, lost_reason = $3, closed_at = coalesce(closed_at, $4), version = $5 \
         WHERE tenant_id = $1 AND id = $2 AND version <= $5",
    )
    .bind(tenant)
    .bind(id(&l.opportunity_id))
    .bind(&l.lost_reason)
    .bind(at)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(())
}

/// A quota set again for the same person or team, period and currency
/// replaces the earlier amount.
pub async fn quota_set(tx: &mut PgConnection, tenant: Uuid, q: &Quota) -> sqlx::Result<()> {
    let dates = (
        NaiveDate::parse_from_str(&q.period_start, "%Y-%m-%d"),
        NaiveDate::parse_from_str(&q.period_end, "%Y-%m-%d"),
    );
    let (Ok(start), Ok(end)) = dates else {
        return Ok(());
    };
    let amount = q.amount.clone().unwrap_or_default();
    sqlx::query(
        "INSERT INTO quotas (tenant_id, owner_id, team_id, period_start, period_end, currency, amount) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, coalesce(owner_id, team_id), period_start, period_end, currency) DO UPDATE SET amount = EXCLUDED.amount",
    )
    .bind(tenant)
    .bind(id(&q.user_id))
    .bind(id(&q.team_id))
    .bind(start)
    .bind(end)
    .bind(&amount.currency)
    .bind(decimal(&amount.amount))
    .execute(tx)
    .await?;
    Ok(())
}

// ---- the sales dashboard ----

/// Which deals the sales dashboard counts: the selection, one pipeline's
/// when named, and amounts in one currency.
pub struct Deals<'a> {
    pub selection: Selection<'a>,
    pub pipeline: Option<Uuid>,
    /// Only deals of accounts in this region.
    pub region: Option<&'a str>,
    pub currency: &'a str,
}

impl Deals<'_> {
    /// [`Deals::push_from`] over `deals` joined to more (a lateral unnest).
    fn push_from_table(&self, query: &mut QueryBuilder<'_, Postgres>, table: &str) {
        self.selection.push_from(query, table);
        if let Some(pipeline) = self.pipeline {
            query.push(" AND pipeline_id = ").push_bind(pipeline);
        }
        if let Some(region) = self.region {
            query.push(" AND region = ").push_bind(region.to_owned());
        }
    }

    /// [`Days::push_rolled`] over deals.
    fn push_rolled(&self, query: &mut QueryBuilder<'_, Postgres>, p: Period, rolled: Rolled<'_>) {
        let from = |query: &mut QueryBuilder<'_, Postgres>, table: &str| {
            self.push_from_table(query, table)
        };
        Days::of(p).push_rolled(query, from, rolled);
    }

    /// ` FROM (...) closed`: the deals closed in the period as rows of
    /// `deal_closed_days`.
    fn push_closed(&self, query: &mut QueryBuilder<'_, Postgres>, p: Period) {
        self.push_rolled(
            query,
            p,
            Rolled {
                rollup: "deal_closed_days",
                columns: "status, owner_id, campaign_id, lost_reason, currency, deals, amount, cycle_seconds",
                rows: "deals",
                row_columns: "status, owner_id, CASE WHEN status = 2 THEN campaign_id END, \
                     CASE WHEN status = 3 THEN lost_reason ELSE '' END, currency, 1, amount, \
                     extract(epoch FROM closed_at - created_at)",
                condition: " AND status IN (2, 3)",
                time: "closed_at",
                alias: "closed",
            },
        );
    }

    /// ` FROM (...) cohort`: the deals created in the period as rows of
    /// `deal_cohort_days`.
    fn push_cohort(&self, query: &mut QueryBuilder<'_, Postgres>, p: Period) {
        self.push_rolled(
            query,
            p,
            Rolled {
                rollup: "deal_cohort_days",
                columns: "furthest, status, won_stage_id, deals",
                rows: "deals",
                row_columns: "furthest, status, CASE WHEN status = 2 THEN stage_id END, 1",
                condition: "",
                time: "created_at",
                alias: "cohort",
            },
        );
    }

    /// ` FROM (...) named`: the competitors named on deals closed in the
    /// period as rows of `deal_competitor_days`.
    fn push_competitors(&self, query: &mut QueryBuilder<'_, Postgres>, p: Period) {
        self.push_rolled(
            query,
            p,
            Rolled {
                rollup: "deal_competitor_days",
                columns: "competitor, status, deals",
                rows: "deals, unnest(competitors) AS competitor",
                row_columns: "competitor, status, 1",
                condition: " AND status IN (2, 3)",
                time: "closed_at",
                alias: "named",
            },
        );
    }

    /// ` AND currency = <the dashboard's>`: the rows whose amounts add up.
    fn push_currency(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query
            .push(" AND currency = ")
            .push_bind(self.currency.to_owned());
    }
}

/// The pipeline a funnel is drawn for when none is named: the default,
/// else the first by name.
pub async fn default_pipeline(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM pipelines WHERE tenant_id = $1 ORDER BY is_default DESC, name, id LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(tx)
    .await
}

/// The currency most of the tenant's deals are in, when the caller names
/// none.
pub async fn usual_currency(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT currency FROM (SELECT currency, deals FROM deal_open_totals WHERE tenant_id = $1 \
         UNION ALL SELECT currency, deals FROM deal_closed_days WHERE tenant_id = $1) d \
         WHERE currency <> '' GROUP BY currency HAVING sum(deals) > 0 ORDER BY sum(deals) DESC, currency LIMIT 1",
    )
    .bind(tenant)
    .fetch_optional(tx)
    .await
}

#[derive(sqlx::FromRow)]
pub struct StageRow {
    pub id: Uuid,
    pub name: String,
    pub kind: i16,
    pub position: i32,
}

pub async fn stages(
    tx: &mut PgConnection,
    tenant: Uuid,
    pipeline: Uuid,
) -> sqlx::Result<Vec<StageRow>> {
    sqlx::query_as(
        "SELECT id, name, kind, position FROM stages WHERE tenant_id = $1 AND pipeline_id = $2 ORDER BY position",
    )
    .bind(tenant)
    .bind(pipeline)
    .fetch_all(tx)
    .await
}

/// Deals of the funnel's cohort (created in the period in the pipeline),
/// counted by the furthest open stage position they entered, their status
/// and, when won, their stage.
#[derive(sqlx::FromRow)]
pub struct Reach {
    pub furthest: Option<i32>,
    pub status: i16,
    pub stage_id: Option<Uuid>,
    pub deals: i64,
}

pub async fn reach(tx: &mut PgConnection, d: &Deals<'_>, p: Period) -> sqlx::Result<Vec<Reach>> {
    let mut query = QueryBuilder::new(
        "SELECT furthest, status, won_stage_id AS stage_id, sum(deals)::int8 AS deals",
    );
    d.push_cohort(&mut query, p);
    query.push(" GROUP BY 1, 2, 3 HAVING sum(deals) > 0");
    query.build_query_as().fetch_all(tx).await
}

/// The dashboard's single figures; amounts are exact decimal strings.
#[derive(sqlx::FromRow)]
pub struct Figures {
    pub won: i64,
    pub lost: i64,
    pub won_amount: Decimal,
    pub average_deal_size: Option<Decimal>,
    pub average_cycle_days: Option<Decimal>,
    pub open: i64,
    pub open_amount: Decimal,
    pub weighted_amount: Decimal,
}

pub async fn figures(tx: &mut PgConnection, d: &Deals<'_>, p: Period) -> sqlx::Result<Figures> {
    let won_here = |query: &mut QueryBuilder<'_, Postgres>| {
        query.push("status = 2");
        d.push_currency(query);
    };
    let mut query = QueryBuilder::new(
        "SELECT * FROM (SELECT coalesce(sum(deals) FILTER (WHERE status = 2), 0)::int8 AS won, \
         coalesce(sum(deals) FILTER (WHERE status = 3), 0)::int8 AS lost, coalesce(sum(amount) FILTER (WHERE ",
    );
    won_here(&mut query);
    query.push("), 0) AS won_amount, round(sum(amount) FILTER (WHERE ");
    won_here(&mut query);
    query.push(") / nullif(sum(deals) FILTER (WHERE ");
    won_here(&mut query);
    query.push(
        "), 0), 2) AS average_deal_size, \
         round(sum(cycle_seconds) FILTER (WHERE status = 2) / nullif(sum(deals) FILTER (WHERE status = 2), 0) / 86400, 1) AS average_cycle_days",
    );
    d.push_closed(&mut query, p);
    query.push(
        ") closed_figures, (SELECT coalesce(sum(deals), 0)::int8 AS open, coalesce(sum(amount) FILTER (WHERE TRUE",
    );
    d.push_currency(&mut query);
    query.push("), 0) AS open_amount, round(coalesce(sum(weighted) FILTER (WHERE TRUE");
    d.push_currency(&mut query);
    query.push("), 0), 2) AS weighted_amount");
    d.push_from_table(&mut query, "deal_open_totals");
    query.push(") open_figures");
    query.build_query_as().fetch_one(tx).await
}

/// A count and an amount per value of a breakdown.
#[derive(sqlx::FromRow, Debug)]
pub struct Sum {
    pub key: String,
    pub label: String,
    pub count: i64,
    pub amount: Decimal,
}

/// The ways deals are summed up: a closed set, never a name from input.
#[derive(Debug, Clone, Copy)]
pub enum Breakdown {
    /// Open deals now, by stage, owner or expected close month.
    OpenByStage,
    OpenByOwner,
    OpenByCloseMonth,
    /// Deals won in the period, by owner (the leaderboard), account or
    /// campaign.
    WonByOwner,
    WonByAccount,
    WonByCampaign,
}

/// The most values a breakdown lists (the biggest first).
pub const BREAKDOWN_LIMIT: i64 = 50;

impl Breakdown {
    fn key(self) -> &'static str {
        match self {
            Breakdown::OpenByStage => "stage_id::text",
            Breakdown::OpenByOwner | Breakdown::WonByOwner => "owner_id::text",
            Breakdown::OpenByCloseMonth => "to_char(close_month, 'YYYY-MM')",
            Breakdown::WonByAccount => "account_id::text",
            Breakdown::WonByCampaign => "campaign_id::text",
        }
    }
}

pub async fn sums(
    tx: &mut PgConnection,
    d: &Deals<'_>,
    p: Period,
    breakdown: Breakdown,
) -> sqlx::Result<Vec<Sum>> {
    let key = breakdown.key();
    let mut query = QueryBuilder::new(format!(
        "SELECT {key} AS key, '' AS label, sum(deals)::int8 AS count, coalesce(sum(amount) FILTER (WHERE TRUE"
    ));
    d.push_currency(&mut query);
    query.push("), 0) AS amount");
    match breakdown {
        Breakdown::OpenByStage | Breakdown::OpenByOwner | Breakdown::OpenByCloseMonth => {
            d.push_from_table(&mut query, "deal_open_totals");
        }
        Breakdown::WonByOwner | Breakdown::WonByCampaign => {
            d.push_closed(&mut query, p);
            query.push(" WHERE status = 2");
        }
        Breakdown::WonByAccount => {
            d.push_rolled(
                &mut query,
                p,
                Rolled {
                    rollup: "deal_account_days",
                    columns: "account_id, currency, deals, amount",
                    rows: "deals",
                    row_columns: "account_id, currency, 1, amount",
                    condition: " AND status = 2 AND account_id IS NOT NULL",
                    time: "closed_at",
                    alias: "won",
                },
            );
            query.push(" WHERE TRUE");
        }
    }
    query.push(format!(
        " AND {key} IS NOT NULL GROUP BY 1 HAVING sum(deals) > 0"
    ));
    query.push(match breakdown {
        Breakdown::OpenByCloseMonth => " ORDER BY 1",
        _ => " ORDER BY 4 DESC, 3 DESC, 1",
    });
    query.push(" LIMIT ").push_bind(BREAKDOWN_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// Line items of the deals won in the period, by product (lines in the
/// dashboard's currency).
pub async fn won_by_product(
    tx: &mut PgConnection,
    d: &Deals<'_>,
    p: Period,
) -> sqlx::Result<Vec<Sum>> {
    let mut query = QueryBuilder::new(
        "SELECT coalesce(product_id::text, '') AS key, coalesce(max(description) FILTER (WHERE lines > 0), '') AS label, \
         sum(lines)::int8 AS count, sum(amount) AS amount",
    );
    d.push_rolled(
        &mut query,
        p,
        Rolled {
            rollup: "deal_product_days",
            columns: "product_id, description, currency, lines, amount",
            // The won deals' lines, with the deals' columns the selection
            // reads.
            rows: "(SELECT d.tenant_id, d.owner_id, d.team_id, d.pipeline_id, d.region, d.status, d.closed_at, \
                   l.product_id, l.description, l.currency, l.total FROM deal_lines l \
                   JOIN deals d ON d.tenant_id = l.tenant_id AND d.id = l.deal_id) won_lines",
            row_columns: "product_id, description, currency, 1, total",
            condition: " AND status = 2",
            time: "closed_at",
            alias: "won",
        },
    );
    query.push(" WHERE TRUE");
    d.push_currency(&mut query);
    query.push(" GROUP BY 1 HAVING sum(lines) > 0 ORDER BY 4 DESC, 3 DESC, 1 LIMIT ");
    query.push_bind(BREAKDOWN_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// Deals lost in the period by reason, most first.
pub async fn lost_reasons(
    tx: &mut PgConnection,
    d: &Deals<'_>,
    p: Period,
) -> sqlx::Result<Vec<(String, i64)>> {
    let mut query = QueryBuilder::new("SELECT lost_reason, sum(deals)::int8");
    d.push_closed(&mut query, p);
    query.push(" WHERE status = 3 GROUP BY 1 HAVING sum(deals) > 0 ORDER BY 2 DESC, 1 LIMIT ");
    query.push_bind(BREAKDOWN_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// Per competitor named on deals closed in the period: won and lost.
pub async fn competitors(
    tx: &mut PgConnection,
    d: &Deals<'_>,
    p: Period,
) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let mut query = QueryBuilder::new(
        "SELECT competitor, coalesce(sum(deals) FILTER (WHERE status = 2), 0)::int8, \
         coalesce(sum(deals) FILTER (WHERE status = 3), 0)::int8",
    );
    d.push_competitors(&mut query, p);
    query.push(" GROUP BY 1 HAVING sum(deals) > 0 ORDER BY sum(deals) DESC, 1 LIMIT ");
    query.push_bind(BREAKDOWN_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// The quotas overlapping the period: one owner's, one team's, or (for
/// neither) the teams' quotas, among those the caller may see.
pub async fn quota(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    currency: &str,
    p: Period,
) -> sqlx::Result<Option<Decimal>> {
    let last_day = (p.to - Duration::nanoseconds(1)).date_naive();
    let selection = Selection {
        team: if s.owner.is_some() { None } else { s.team },
        ..*s
    };
    let mut query = QueryBuilder::new("SELECT sum(amount)");
    selection.push_from(&mut query, "quotas");
    query
        .push(" AND currency = ")
        .push_bind(currency.to_owned());
    query.push(" AND period_start <= ").push_bind(last_day);
    query
        .push(" AND period_end >= ")
        .push_bind(p.from.date_naive());
    if s.owner.is_none() && s.team.is_none() {
        query.push(" AND team_id IS NOT NULL");
    }
    query.build_query_scalar().fetch_one(tx).await
}
