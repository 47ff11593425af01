//! Campaigns and their cost entries.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::marketing::v1::{Campaign, CostEntry};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, id_text, money};
use crate::domain::campaign::Checked;

const COLUMNS: &str = "id, name, type, status, starts_at, ends_at, owner_id, team_id, currency, budget, expected_revenue, actual_cost, parent_campaign_id, goal, tags, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    name: String,
    r#type: i16,
    status: i16,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    currency: String,
    budget: Option<Decimal>,
    expected_revenue: Option<Decimal>,
    actual_cost: Decimal,
    parent_campaign_id: Option<Uuid>,
    goal: String,
    tags: Vec<String>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<Row> for Campaign {
    fn from(r: Row) -> Self {
        Campaign {
            id: r.id.to_string(),
            name: r.name,
            r#type: r.r#type.into(),
            status: r.status.into(),
            starts_at: kit::time::to_optional_timestamp(r.starts_at),
            ends_at: kit::time::to_optional_timestamp(r.ends_at),
            owner_id: id_text(r.owner_id),
            team_id: id_text(r.team_id),
            budget: money(r.budget, &r.currency),
            actual_cost: (!r.currency.is_empty())
                .then(|| money(Some(r.actual_cost), &r.currency))
                .flatten(),
            expected_revenue: money(r.expected_revenue, &r.currency),
            parent_campaign_id: id_text(r.parent_campaign_id),
            goal: r.goal,
            tags: r.tags,
            member_counts: Default::default(),
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

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &Campaign,
    checked: &Checked,
    actor: &str,
) -> sqlx::Result<Campaign> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO campaigns (tenant_id, id, name, type, status, starts_at, ends_at, owner_id, team_id, currency, budget, \
         expected_revenue, parent_campaign_id, goal, tags, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&c.name)
    .bind(c.r#type as i16)
    .bind(c.status as i16)
    .bind(checked.starts_at)
    .bind(checked.ends_at)
    .bind(checked.owner)
    .bind(checked.team)
    .bind(&checked.currency)
    .bind(checked.budget)
    .bind(checked.expected_revenue)
    .bind(checked.parent)
    .bind(&c.goal)
    .bind(&c.tags)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Writes a changed campaign; the currency of existing costs is kept
/// (the handler refused a change of it).
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &Campaign,
    checked: &Checked,
    actor: &str,
) -> sqlx::Result<Campaign> {
    let row: Row = sqlx::query_as(&format!(
        "UPDATE campaigns SET name = $3, type = $4, status = $5, starts_at = $6, ends_at = $7, owner_id = $8, team_id = $9, \
         currency = CASE WHEN $10 = '' THEN currency ELSE $10 END, budget = $11, expected_revenue = $12, parent_campaign_id = $13, \
         goal = $14, tags = $15, updated_at = now(), updated_by = $16, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&c.name)
    .bind(c.r#type as i16)
    .bind(c.status as i16)
    .bind(checked.starts_at)
    .bind(checked.ends_at)
    .bind(checked.owner)
    .bind(checked.team)
    .bind(&checked.currency)
    .bind(checked.budget)
    .bind(checked.expected_revenue)
    .bind(checked.parent)
    .bind(&c.goal)
    .bind(&c.tags)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Any campaign of the tenant (every reader sees campaigns).
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Campaign>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = $1 AND id = $2{lock}"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Campaign::from))
}

/// A campaign the caller may change (its scope covers owner or team),
/// locked for the change.
pub async fn find_to_change(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &kit::access::Scope,
    id: Uuid,
) -> sqlx::Result<Option<Campaign>> {
    let row: Option<Row> = scope
        .select_one(COLUMNS, "campaigns", tenant, id, true)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Campaign::from))
}

/// Members per status, keyed by the status's proto name.
pub async fn member_counts(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<std::collections::HashMap<String, i64>> {
    let rows: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM campaign_members WHERE tenant_id = $1 AND campaign_id = $2 GROUP BY status",
    )
    .bind(tenant)
    .bind(id)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(status, count)| {
            let status = crm_proto::crm::marketing::v1::MemberStatus::try_from(i32::from(status))
                .unwrap_or_default();
            (status.as_str_name().to_owned(), count)
        })
        .collect())
}

/// Whether `candidate` is `id` or one of the campaigns below it (so it
/// cannot become its parent). Bounded to 100 levels.
pub async fn is_below(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    candidate: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "WITH RECURSIVE up (id, parent, depth) AS ( \
           SELECT id, parent_campaign_id, 0 FROM campaigns WHERE tenant_id = $1 AND id = $3 \
           UNION ALL \
           SELECT c.id, c.parent_campaign_id, up.depth + 1 FROM campaigns c JOIN up ON c.id = up.parent \
            WHERE c.tenant_id = $1 AND up.depth < 100) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
    )
    .bind(tenant)
    .bind(id)
    .bind(candidate)
    .fetch_one(tx)
    .await
}

pub async fn exists(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM campaigns WHERE tenant_id = $1 AND id = $2)")
        .bind(tenant)
        .bind(id)
        .fetch_one(tx)
        .await
}

#[derive(Debug, Default)]
pub struct CampaignFilter {
    pub status: Option<i16>,
    pub r#type: Option<i16>,
    pub owner: Option<Uuid>,
    pub parent: Option<Uuid>,
    pub tag: Option<String>,
}

/// Newest first (ids are UUIDv7), after the cursor's id.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    filter: &CampaignFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Campaign>> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM campaigns WHERE tenant_id = "
    ));
    query.push_bind(tenant);
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(kind) = filter.r#type {
        query.push(" AND type = ").push_bind(kind);
    }
    if let Some(owner) = filter.owner {
        query.push(" AND owner_id = ").push_bind(owner);
    }
    if let Some(parent) = filter.parent {
        query.push(" AND parent_campaign_id = ").push_bind(parent);
    }
    if let Some(tag) = &filter.tag {
        query
            .push(" AND ")
            .push_bind(tag.clone())
            .push(" = ANY(tags)");
    }
    if let Some(after) = after {
        query.push(" AND id < ").push_bind(after);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows: Vec<Row> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Campaign::from).collect())
}

#[derive(sqlx::FromRow)]
struct CostRow {
    id: Uuid,
    campaign_id: Uuid,
    amount: Decimal,
    incurred_on: NaiveDate,
    description: String,
    created_at: DateTime<Utc>,
    created_by: String,
}

const COST_COLUMNS: &str =
    "id, campaign_id, amount, incurred_on, description, created_at, created_by";

fn cost(r: CostRow, currency: &str) -> CostEntry {
    CostEntry {
        id: r.id.to_string(),
        campaign_id: r.campaign_id.to_string(),
        amount: money(Some(r.amount), currency),
        incurred_on: r.incurred_on.to_string(),
        description: r.description,
        created_at: Some(kit::time::to_timestamp(r.created_at)),
        created_by: r.created_by,
    }
}

/// The values of a checked cost entry.
pub struct NewCost<'a> {
    pub id: Uuid,
    pub campaign: Uuid,
    pub amount: Decimal,
    pub currency: &'a str,
    pub incurred_on: NaiveDate,
    pub description: &'a str,
}

/// Books a cost and adds it to the campaign's actual cost (the campaign
/// row is locked by the caller); the first cost of a campaign without a
/// currency sets it. Returns the entry and the new actual cost.
pub async fn add_cost(
    tx: &mut PgConnection,
    tenant: Uuid,
    new: &NewCost<'_>,
    actor: &str,
) -> sqlx::Result<(CostEntry, Decimal)> {
    let row: CostRow = sqlx::query_as(&format!(
        "INSERT INTO campaign_costs (tenant_id, id, campaign_id, amount, incurred_on, description, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COST_COLUMNS}"
    ))
    .bind(tenant)
    .bind(new.id)
    .bind(new.campaign)
    .bind(new.amount)
    .bind(new.incurred_on)
    .bind(new.description)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    let total: Decimal = sqlx::query_scalar(
        "UPDATE campaigns SET actual_cost = actual_cost + $3, currency = $4 \
         WHERE tenant_id = $1 AND id = $2 RETURNING actual_cost",
    )
    .bind(tenant)
    .bind(new.campaign)
    .bind(new.amount)
    .bind(new.currency)
    .fetch_one(tx)
    .await?;
    Ok((cost(row, new.currency), total))
}

pub async fn find_cost(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    currency: &str,
) -> sqlx::Result<Option<CostEntry>> {
    let row: Option<CostRow> = sqlx::query_as(&format!(
        "SELECT {COST_COLUMNS} FROM campaign_costs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| cost(r, currency)))
}

/// Oldest first.
pub async fn list_costs(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: Uuid,
    currency: &str,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<CostEntry>> {
    let rows: Vec<CostRow> = sqlx::query_as(&format!(
        "SELECT {COST_COLUMNS} FROM campaign_costs WHERE tenant_id = $1 AND campaign_id = $2 \
         AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"
    ))
    .bind(tenant)
    .bind(campaign)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(|r| cost(r, currency)).collect())
}
