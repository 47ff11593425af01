//! The marketing dashboard: each campaign's cost, reach, response, leads,
//! won deals and attributed revenue with ROI under every model.

use chrono::Duration;
use crm_proto::crm::marketing::v1::{CampaignStatus, CampaignType};
use crm_proto::crm::reporting::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::time::to_optional_timestamp;
use rust_decimal::Decimal;

use super::{currency, Filters, State};
use crate::domain::access::{authorize_read, scope};
use crate::domain::{key_of, money, percent, share};
use crate::store::marketing::{self as store, CampaignRow};
use crate::store::{freshness, Selection};

/// The period campaigns are listed for when none is named.
const DEFAULT_PERIOD: Duration = Duration::days(90);

/// Cost per lead, or empty without leads.
fn per_lead(cost: Decimal, leads: i64) -> String {
    if leads > 0 {
        money(cost / Decimal::from(leads))
    } else {
        String::new()
    }
}

fn figures(r: &CampaignRow) -> CampaignFigures {
    let reached = r.sent - r.bounced;
    let attribution = [
        ("first_touch", r.first_touch),
        ("last_touch", r.last_touch),
        ("linear", r.linear),
    ]
    .into_iter()
    .map(|(model, amount)| AttributedRevenue {
        model: model.to_owned(),
        amount: money(amount),
        roi_percent: percent(amount - r.cost, r.cost),
    })
    .collect();
    CampaignFigures {
        campaign_id: r.id.to_string(),
        r#type: key_of(
            CampaignType::try_from(i32::from(r.r#type))
                .ok()
                .map(|t| t.as_str_name()),
            "CAMPAIGN_TYPE_",
        ),
        status: key_of(
            CampaignStatus::try_from(i32::from(r.status))
                .ok()
                .map(|s| s.as_str_name()),
            "CAMPAIGN_STATUS_",
        ),
        currency: r.currency.clone(),
        budget: r.budget.map(money).unwrap_or_default(),
        cost: money(r.cost),
        members: r.members,
        responded: r.responded,
        response_rate_percent: share(r.responded, r.members),
        sent: r.sent,
        delivered: r.delivered,
        opened: r.opened,
        clicked: r.clicked,
        bounced: r.bounced,
        unsubscribed: r.unsubscribed,
        open_rate_percent: share(r.opened, reached),
        click_rate_percent: share(r.clicked, reached),
        click_to_open_percent: share(r.clicked, r.opened),
        leads: r.leads,
        cost_per_lead: per_lead(r.cost, r.leads),
        won: r.won,
        won_amount: money(r.won_amount),
        attribution,
    }
}

/// Every campaign in `currency` added up (counts too, so rates stay
/// consistent with the amounts).
fn total(rows: &[CampaignRow], currency: &str) -> CampaignRow {
    let mut sum = CampaignRow {
        id: uuid::Uuid::nil(),
        r#type: 0,
        status: 0,
        currency: currency.to_owned(),
        budget: None,
        cost: Decimal::ZERO,
        members: 0,
        responded: 0,
        sent: 0,
        delivered: 0,
        opened: 0,
        clicked: 0,
        bounced: 0,
        unsubscribed: 0,
        leads: 0,
        won: 0,
        won_amount: Decimal::ZERO,
        first_touch: Decimal::ZERO,
        last_touch: Decimal::ZERO,
        linear: Decimal::ZERO,
    };
    for r in rows.iter().filter(|r| r.currency == currency) {
        sum.budget = Some(sum.budget.unwrap_or_default() + r.budget.unwrap_or_default());
        sum.cost += r.cost;
        sum.members += r.members;
        sum.responded += r.responded;
        sum.sent += r.sent;
        sum.delivered += r.delivered;
        sum.opened += r.opened;
        sum.clicked += r.clicked;
        sum.bounced += r.bounced;
        sum.unsubscribed += r.unsubscribed;
        sum.leads += r.leads;
        sum.won += r.won;
        sum.won_amount += r.won_amount;
        sum.first_touch += r.first_touch;
        sum.last_touch += r.last_touch;
        sum.linear += r.linear;
    }
    sum
}

pub async fn dashboard(
    state: &State,
    caller: CallerContext,
    request: GetMarketingDashboardRequest,
) -> kit::Result<GetMarketingDashboardResponse> {
    authorize_read(&caller)?;
    let mut v = Violations::new();
    let filters = Filters::read_with(
        request.from.as_ref(),
        request.to.as_ref(),
        ("owner_id", &request.owner_id),
        ("team_id", &request.team_id),
        state.clock.now(),
        DEFAULT_PERIOD,
        &mut v,
    )?;
    let asked = currency(&request.currency, &mut v);
    v.into_result()?;
    let scope = scope(&caller);
    let selection = Selection {
        tenant: caller.tenant_id,
        scope: &scope,
        owner: filters.owner,
        team: filters.team,
    };
    let mut tx = state.snapshot(&caller).await?;
    let rows = store::campaigns(&mut tx, &selection, filters.period).await?;
    let currency = asked.unwrap_or_else(|| usual(&rows));
    let mut total = figures(&total(&rows, &currency));
    total.campaign_id.clear();
    total.r#type.clear();
    total.status.clear();
    let as_of = freshness::as_of(&mut tx, caller.tenant_id, "marketing").await?;
    Ok(GetMarketingDashboardResponse {
        dashboard: Some(MarketingDashboard {
            currency,
            campaigns: rows.iter().map(figures).collect(),
            total: Some(total),
            as_of: to_optional_timestamp(as_of),
        }),
    })
}

/// The currency most of the listed campaigns are in.
fn usual(rows: &[CampaignRow]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in rows.iter().filter(|r| !r.currency.is_empty()) {
        match counts.iter_mut().find(|(c, _)| *c == r.currency) {
            Some((_, n)) => *n += 1,
            None => counts.push((&r.currency, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .first()
        .map(|(c, _)| (*c).to_owned())
        .unwrap_or_default()
}
