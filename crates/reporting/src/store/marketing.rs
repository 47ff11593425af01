//! Campaigns, members, messages and attribution as projected, and the
//! marketing dashboard's figures per campaign.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{AttributionComputed, Campaign, CampaignMember};
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{id, time, Selection};
use crate::domain::Period;

fn decimal(raw: &str) -> Option<Decimal> {
    Decimal::from_str(raw).ok()
}

/// A campaign as marketing now has it.
pub async fn campaign(
    tx: &mut PgConnection,
    tenant: Uuid,
    c: &Campaign,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let Some(campaign) = id(&c.id) else {
        return Ok(());
    };
    let budget = c.budget.clone().unwrap_or_default();
    let cost = c.actual_cost.clone().unwrap_or_default();
    let currency = if budget.currency.is_empty() {
        cost.currency.clone()
    } else {
        budget.currency.clone()
    };
    let created_at = time(c.audit.as_ref().and_then(|a| a.created_at.as_ref())).unwrap_or(at);
    sqlx::query(
        "INSERT INTO campaigns (tenant_id, id, type, status, owner_id, team_id, currency, budget, cost, starts_at, ends_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, 0), $10, $11, $12) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET type = EXCLUDED.type, status = EXCLUDED.status, owner_id = EXCLUDED.owner_id, \
         team_id = EXCLUDED.team_id, currency = EXCLUDED.currency, budget = EXCLUDED.budget, \
         cost = coalesce($9, campaigns.cost), starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at",
    )
    .bind(tenant)
    .bind(campaign)
    .bind(c.r#type as i16)
    .bind(c.status as i16)
    .bind(id(&c.owner_id))
    .bind(id(&c.team_id))
    .bind(&currency)
    .bind(decimal(&budget.amount))
    .bind(decimal(&cost.amount))
    .bind(time(c.starts_at.as_ref()))
    .bind(time(c.ends_at.as_ref()))
    .bind(created_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn status(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: &str,
    status: i32,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE campaigns SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(campaign))
        .bind(status as i16)
        .execute(tx)
        .await?;
    Ok(())
}

/// The campaign's cost with a new entry, as marketing sums it.
pub async fn cost(
    tx: &mut PgConnection,
    tenant: Uuid,
    campaign: &str,
    total: &str,
) -> sqlx::Result<()> {
    let Some(total) = decimal(total) else {
        return Ok(());
    };
    sqlx::query("UPDATE campaigns SET cost = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(campaign))
        .bind(total)
        .execute(tx)
        .await?;
    Ok(())
}

/// A member as added or moved along the campaign's funnel.
pub async fn member(tx: &mut PgConnection, tenant: Uuid, m: &CampaignMember) -> sqlx::Result<()> {
    let (Some(member), Some(campaign)) = (id(&m.id), id(&m.campaign_id)) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO campaign_members (tenant_id, id, campaign_id, status, responded_at, converted_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET status = EXCLUDED.status, \
         responded_at = coalesce(EXCLUDED.responded_at, campaign_members.responded_at), \
         converted_at = coalesce(EXCLUDED.converted_at, campaign_members.converted_at)",
    )
    .bind(tenant)
    .bind(member)
    .bind(campaign)
    .bind(m.status as i16)
    .bind(time(m.responded_at.as_ref()))
    .bind(time(m.converted_at.as_ref()))
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn member_removed(tx: &mut PgConnection, tenant: Uuid, member: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM campaign_members WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(member))
        .execute(tx)
        .await?;
    Ok(())
}

/// A message the relay accepted.
pub async fn sent(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: &str,
    campaign: &str,
    channel: i32,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO messages (tenant_id, recipient_id, campaign_id, channel, sent_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, recipient_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(id(recipient))
    .bind(id(campaign))
    .bind(channel as i16)
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// What happened to a message after it was sent: a closed set, never a
/// name from input.
#[derive(Debug, Clone, Copy)]
pub enum Fate {
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Unsubscribed,
}

/// The first time a message met its `fate` (opens and clicks repeat).
pub async fn fate(
    tx: &mut PgConnection,
    tenant: Uuid,
    recipient: &str,
    fate: Fate,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let column = match fate {
        Fate::Delivered => "delivered_at",
        Fate::Opened => "opened_at",
        Fate::Clicked => "clicked_at",
        Fate::Bounced => "bounced_at",
        Fate::Unsubscribed => "unsubscribed_at",
    };
    sqlx::query(&format!(
        "UPDATE messages SET {column} = coalesce({column}, $3) WHERE tenant_id = $1 AND recipient_id = $2"
    ))
    .bind(tenant)
    .bind(id(recipient))
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

/// A won deal's shares, replacing any computed before.
pub async fn attributed(
    tx: &mut PgConnection,
    tenant: Uuid,
    a: &AttributionComputed,
) -> sqlx::Result<()> {
    let Some(deal) = id(&a.opportunity_id) else {
        return Ok(());
    };
    sqlx::query("DELETE FROM attributions WHERE tenant_id = $1 AND opportunity_id = $2")
        .bind(tenant)
        .bind(deal)
        .execute(&mut *tx)
        .await?;
    for share in &a.shares {
        let amount = share.amount.clone().unwrap_or_default();
        let (Some(campaign), Some(value)) = (id(&share.campaign_id), decimal(&amount.amount))
        else {
            continue;
        };
        sqlx::query(
            "INSERT INTO attributions (tenant_id, opportunity_id, campaign_id, model, amount, currency) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, opportunity_id, campaign_id, model) DO UPDATE SET amount = EXCLUDED.amount",
        )
        .bind(tenant)
        .bind(deal)
        .bind(campaign)
        .bind(share.model as i16)
        .bind(value)
        .bind(&amount.currency)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// One campaign's figures over its life; leads and won deals only those the
/// caller may see; attributed revenue in the campaign's currency per model
/// (the source's numbers 1 first touch, 2 last touch, 3 linear).
#[derive(sqlx::FromRow, Debug)]
pub struct CampaignRow {
    pub id: Uuid,
    pub r#type: i16,
    pub status: i16,
    pub currency: String,
    pub budget: Option<Decimal>,
    pub cost: Decimal,
    pub members: i64,
    pub responded: i64,
    pub sent: i64,
    pub delivered: i64,
    pub opened: i64,
    pub clicked: i64,
    pub bounced: i64,
    pub unsubscribed: i64,
    pub leads: i64,
    pub won: i64,
    pub won_amount: Decimal,
    pub first_touch: Decimal,
    pub last_touch: Decimal,
    pub linear: Decimal,
}

/// The most campaigns one answer lists (the costliest first).
pub const CAMPAIGN_LIMIT: i64 = 200;

/// Campaigns running at some time in the period (from their start, or
/// creation, to their end if any), of the selection's owner and team; every
/// campaign is the tenant's to read, as in marketing.
pub async fn campaigns(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
) -> sqlx::Result<Vec<CampaignRow>> {
    let mut query = QueryBuilder::new(
        "SELECT c.id, c.type, c.status, c.currency, c.budget, c.cost, \
         (SELECT count(*) FROM campaign_members m WHERE m.tenant_id = c.tenant_id AND m.campaign_id = c.id) AS members, \
         (SELECT count(m.responded_at) FROM campaign_members m WHERE m.tenant_id = c.tenant_id AND m.campaign_id = c.id) AS responded, \
         coalesce(g.sent, 0) AS sent, coalesce(g.delivered, 0) AS delivered, coalesce(g.opened, 0) AS opened, \
         coalesce(g.clicked, 0) AS clicked, coalesce(g.bounced, 0) AS bounced, coalesce(g.unsubscribed, 0) AS unsubscribed, \
         (SELECT count(*) FROM leads WHERE leads.tenant_id = c.tenant_id AND leads.campaign_id = c.id AND ",
    );
    s.scope.push_condition(&mut query);
    query.push(
        ") AS leads, (SELECT count(*) FROM deals WHERE deals.tenant_id = c.tenant_id AND deals.campaign_id = c.id AND deals.status = 2 AND ",
    );
    s.scope.push_condition(&mut query);
    query.push(
        ") AS won, (SELECT coalesce(sum(amount), 0) FROM deals WHERE deals.tenant_id = c.tenant_id AND deals.campaign_id = c.id \
         AND deals.status = 2 AND deals.currency = c.currency AND ",
    );
    s.scope.push_condition(&mut query);
    query.push(") AS won_amount");
    for (model, name) in [(1, "first_touch"), (2, "last_touch"), (3, "linear")] {
        query.push(format!(
            ", (SELECT coalesce(sum(amount), 0) FROM attributions a WHERE a.tenant_id = c.tenant_id AND a.campaign_id = c.id \
             AND a.currency = c.currency AND a.model = {model}) AS {name}"
        ));
    }
    query.push(
        " FROM campaigns c LEFT JOIN LATERAL (SELECT count(*) AS sent, count(delivered_at) AS delivered, count(opened_at) AS opened, \
         count(clicked_at) AS clicked, count(bounced_at) AS bounced, count(unsubscribed_at) AS unsubscribed \
         FROM messages WHERE messages.tenant_id = c.tenant_id AND messages.campaign_id = c.id) g ON true WHERE c.tenant_id = ",
    );
    query.push_bind(s.tenant);
    query
        .push(" AND coalesce(c.starts_at, c.created_at) < ")
        .push_bind(p.to);
    query
        .push(" AND (c.ends_at IS NULL OR c.ends_at >= ")
        .push_bind(p.from);
    query.push(")");
    push_campaign_filters(&mut query, s);
    query
        .push(" ORDER BY c.cost DESC, c.id LIMIT ")
        .push_bind(CAMPAIGN_LIMIT);
    query.build_query_as().fetch_all(tx).await
}

/// The owner and team filters over the campaigns' own columns.
fn push_campaign_filters(query: &mut QueryBuilder<'_, Postgres>, s: &Selection<'_>) {
    if let Some(owner) = s.owner {
        query.push(" AND c.owner_id = ").push_bind(owner);
    }
    if let Some(team) = s.team {
        query.push(" AND c.team_id = ").push_bind(team);
    }
}
