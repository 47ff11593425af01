//! Opportunities and their stage history.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::{ContactRole, LineItem, Opportunity, StageChange};
use kit::access::Scope;
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, checked_id, id_text};

const COLUMNS: &str = "id, pipeline_id, stage_id, account_id, contacts, name, amount, currency, close_date, probability, forecast_category, status, owner_id, team_id, campaign_id, competitors, lost_reason, next_step, line_items, lead_id, closed_at, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    pipeline_id: Uuid,
    stage_id: Uuid,
    account_id: Option<Uuid>,
    contacts: serde_json::Value,
    name: String,
    amount: Decimal,
    currency: String,
    close_date: Option<NaiveDate>,
    probability: i32,
    forecast_category: i16,
    status: i16,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    campaign_id: Option<Uuid>,
    competitors: Vec<String>,
    lost_reason: String,
    next_step: String,
    line_items: serde_json::Value,
    lead_id: Option<Uuid>,
    closed_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money {
        amount: amount.to_owned(),
        currency: currency.to_owned(),
    })
}

fn contacts_to_json(contacts: &[ContactRole]) -> serde_json::Value {
    contacts
        .iter()
        .map(|c| serde_json::json!({"contact_id": c.contact_id, "role": c.role}))
        .collect()
}

fn lines_to_json(lines: &[LineItem]) -> serde_json::Value {
    lines
        .iter()
        .map(|l| {
            let price = l.unit_price.clone().unwrap_or_default();
            let total = l.total.clone().unwrap_or_default();
            serde_json::json!({"product_id": l.product_id, "description": l.description, "quantity": l.quantity,
                "unit_price": price.amount, "currency": price.currency, "discount_percent": l.discount_percent, "total": total.amount})
        })
        .collect()
}

fn text(v: &serde_json::Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

impl From<Row> for Opportunity {
    fn from(r: Row) -> Self {
        let currency = r.currency.trim().to_owned();
        let empty = Vec::new();
        Opportunity {
            id: r.id.to_string(),
            pipeline_id: r.pipeline_id.to_string(),
            stage_id: r.stage_id.to_string(),
            account_id: id_text(r.account_id),
            contacts: r
                .contacts
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|c| ContactRole {
                    contact_id: text(c, "contact_id"),
                    role: text(c, "role"),
                })
                .collect(),
            name: r.name,
            amount: money(&r.amount.normalize().to_string(), &currency),
            close_date: r.close_date.map(|d| d.to_string()).unwrap_or_default(),
            probability: r.probability,
            forecast_category: r.forecast_category.into(),
            status: r.status.into(),
            owner_id: id_text(r.owner_id),
            team_id: id_text(r.team_id),
            campaign_id: id_text(r.campaign_id),
            competitors: r.competitors,
            lost_reason: r.lost_reason,
            next_step: r.next_step,
            line_items: r
                .line_items
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|l| LineItem {
                    product_id: text(l, "product_id"),
                    description: text(l, "description"),
                    quantity: text(l, "quantity"),
                    unit_price: money(&text(l, "unit_price"), &text(l, "currency")),
                    discount_percent: text(l, "discount_percent"),
                    total: money(&text(l, "total"), &text(l, "currency")),
                })
                .collect(),
            lead_id: id_text(r.lead_id),
            closed_at: r.closed_at.map(kit::time::to_timestamp),
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

/// Values of a checked opportunity, as bound to SQL.
pub struct Values<'a> {
    pub opportunity: &'a Opportunity,
    pub amount: Decimal,
    pub currency: &'a str,
    pub close_date: Option<NaiveDate>,
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    v: &Values<'_>,
    request_id: Option<&str>,
    actor: &str,
) -> sqlx::Result<Opportunity> {
    let o = v.opportunity;
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO opportunities (tenant_id, id, pipeline_id, stage_id, account_id, contacts, name, amount, currency, close_date, probability, \
         forecast_category, status, owner_id, team_id, campaign_id, competitors, lost_reason, next_step, line_items, lead_id, closed_at, request_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, CASE WHEN $13 <> 1 THEN now() END, $22, $23, $23) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&o.pipeline_id))
    .bind(checked_id(&o.stage_id))
    .bind(checked_id(&o.account_id))
    .bind(contacts_to_json(&o.contacts))
    .bind(&o.name)
    .bind(v.amount)
    .bind(v.currency)
    .bind(v.close_date)
    .bind(o.probability)
    .bind(o.forecast_category as i16)
    .bind(o.status as i16)
    .bind(checked_id(&o.owner_id))
    .bind(checked_id(&o.team_id))
    .bind(checked_id(&o.campaign_id))
    .bind(&o.competitors)
    .bind(&o.lost_reason)
    .bind(&o.next_step)
    .bind(lines_to_json(&o.line_items))
    .bind(checked_id(&o.lead_id))
    .bind(request_id)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    v: &Values<'_>,
    actor: &str,
) -> sqlx::Result<Opportunity> {
    let o = v.opportunity;
    let row: Row = sqlx::query_as(&format!(
        "UPDATE opportunities SET stage_id = $3, account_id = $4, contacts = $5, name = $6, amount = $7, currency = $8, close_date = $9, \
         probability = $10, forecast_category = $11, status = $12, owner_id = $13, team_id = $14, campaign_id = $15, competitors = $16, \
         lost_reason = $17, next_step = $18, line_items = $19, \
         closed_at = CASE WHEN $12 = 1 THEN NULL ELSE coalesce(closed_at, now()) END, \
         updated_at = now(), updated_by = $20, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&o.id))
    .bind(checked_id(&o.stage_id))
    .bind(checked_id(&o.account_id))
    .bind(contacts_to_json(&o.contacts))
    .bind(&o.name)
    .bind(v.amount)
    .bind(v.currency)
    .bind(v.close_date)
    .bind(o.probability)
    .bind(o.forecast_category as i16)
    .bind(o.status as i16)
    .bind(checked_id(&o.owner_id))
    .bind(checked_id(&o.team_id))
    .bind(checked_id(&o.campaign_id))
    .bind(&o.competitors)
    .bind(&o.lost_reason)
    .bind(&o.next_step)
    .bind(lines_to_json(&o.line_items))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn by_request(
    tx: &mut PgConnection,
    tenant: Uuid,
    request_id: &str,
) -> sqlx::Result<Option<Opportunity>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = $1 AND request_id = $2"
    ))
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Opportunity::from))
}

pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Opportunity>> {
    let row: Option<Row> = scope
        .select_one(COLUMNS, "opportunities", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Opportunity::from))
}

#[derive(Default)]
pub struct OpportunityFilter {
    pub pipeline: Option<Uuid>,
    pub stage: Option<Uuid>,
    pub status: Option<i16>,
    pub account: Option<Uuid>,
    pub owner: Option<Uuid>,
    pub contact: Option<Uuid>,
}

pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: &OpportunityFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Opportunity>> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM opportunities WHERE tenant_id = "
    ));
    query.push_bind(tenant);
    for (column, value) in [
        ("pipeline_id", filter.pipeline),
        ("stage_id", filter.stage),
        ("account_id", filter.account),
        ("owner_id", filter.owner),
    ] {
        if let Some(value) = value {
            query.push(format!(" AND {column} = ")).push_bind(value);
        }
    }
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(contact) = filter.contact {
        query
            .push(" AND contacts @> jsonb_build_array(jsonb_build_object('contact_id', ")
            .push_bind(contact.to_string())
            .push("::text))");
    }
    scope.push_sql(&mut query);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<Row> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Opportunity::from).collect())
}

/// One entry of an opportunity's stage history.
pub struct StageMove<'a> {
    pub opportunity: Uuid,
    pub from: Option<Uuid>,
    pub to: Uuid,
    pub amount: Decimal,
    pub currency: &'a str,
}

pub async fn record_stage_change(
    tx: &mut PgConnection,
    tenant: Uuid,
    change: &StageMove<'_>,
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO stage_history (tenant_id, id, opportunity_id, from_stage_id, to_stage_id, changed_at, changed_by, amount, currency) VALUES ($1, $2, $3, $4, $5, clock_timestamp(), $6, $7, $8)")
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(change.opportunity)
        .bind(change.from)
        .bind(change.to)
        .bind(actor)
        .bind(change.amount)
        .bind(change.currency)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    from_stage_id: Option<Uuid>,
    to_stage_id: Uuid,
    changed_at: DateTime<Utc>,
    changed_by: String,
    amount: Decimal,
    currency: String,
}

pub async fn history(
    tx: &mut PgConnection,
    tenant: Uuid,
    opportunity: Uuid,
) -> sqlx::Result<Vec<StageChange>> {
    let rows: Vec<HistoryRow> = sqlx::query_as(
        "SELECT from_stage_id, to_stage_id, changed_at, changed_by, amount, currency FROM stage_history \
         WHERE tenant_id = $1 AND opportunity_id = $2 ORDER BY changed_at, id",
    )
    .bind(tenant)
    .bind(opportunity)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| StageChange {
            from_stage_id: id_text(r.from_stage_id),
            to_stage_id: r.to_stage_id.to_string(),
            changed_at: Some(kit::time::to_timestamp(r.changed_at)),
            changed_by: r.changed_by,
            amount: money(&r.amount.normalize().to_string(), r.currency.trim()),
        })
        .collect())
}

/// Moves every opportunity of a stage to another (before the stage goes).
pub async fn move_all(
    tx: &mut PgConnection,
    tenant: Uuid,
    from: Uuid,
    to: Uuid,
    actor: &str,
) -> sqlx::Result<u64> {
    sqlx::query(
        "INSERT INTO stage_history (tenant_id, id, opportunity_id, from_stage_id, to_stage_id, changed_by, amount, currency) \
         SELECT tenant_id, gen_random_uuid(), id, stage_id, $3, $4, amount, currency FROM opportunities WHERE tenant_id = $1 AND stage_id = $2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let moved = sqlx::query(
        "UPDATE opportunities SET stage_id = $3, updated_at = now(), updated_by = $4, version = version + 1 WHERE tenant_id = $1 AND stage_id = $2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(moved.rows_affected())
}

/// Re-points opportunities of a merged account, or contact roles of a
/// merged contact. Returns the ids touched, for their events.
pub async fn repoint_account(
    tx: &mut PgConnection,
    tenant: Uuid,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE opportunities SET account_id = $3, updated_at = now(), updated_by = 'system:sales', version = version + 1 WHERE tenant_id = $1 AND account_id = $2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}

pub async fn repoint_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "UPDATE opportunities SET contacts = (SELECT coalesce(jsonb_agg(CASE WHEN c->>'contact_id' = $2::text THEN jsonb_set(c, '{contact_id}', to_jsonb($3::text)) ELSE c END), '[]') FROM jsonb_array_elements(contacts) c), \
         updated_at = now(), updated_by = 'system:sales', version = version + 1 \
         WHERE tenant_id = $1 AND contacts @> jsonb_build_array(jsonb_build_object('contact_id', $2::text))",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(tx)
    .await?;
    Ok(done.rows_affected())
}
