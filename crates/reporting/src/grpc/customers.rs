//! The customer dashboard (distribution, RFM, cohorts, lifetime value,
//! churn) and one account's insights (credit grade, churn risk now).

use chrono::Duration;
use crm_proto::crm::customers::v1::LifecycleStage;
use crm_proto::crm::reporting::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::input::parse_id;
use kit::time::to_optional_timestamp;
use kit::Error;
use rust_decimal::Decimal;

use super::{currency, Filters, State};
use crate::domain::access::{authorize_read, scope};
use crate::domain::insights::{churn, credit, segment, ChurnLevel, SEGMENTS};
use crate::domain::{key_of, money};
use crate::store::customers::{self as store, Accounts, Place, StoredRisk};
use crate::store::{accounts, freshness, Selection};

/// The cohorts' period when none is named.
const DEFAULT_COHORT_PERIOD: Duration = Duration::days(365);
/// The RFM lookback when none is named, and the longest.
const DEFAULT_LOOKBACK_DAYS: i32 = 365;
const MAX_LOOKBACK_DAYS: i32 = 3650;
/// How many RFM rows, top accounts and risky accounts an answer lists.
const RFM_ROWS: usize = 200;
const TOP_ACCOUNTS: i64 = 10;
const AT_RISK: i64 = 50;

fn counts(rows: Vec<(String, i64)>) -> Vec<Count> {
    rows.into_iter()
        .map(|(key, count)| Count { key, count })
        .collect()
}

fn level_name(level: i16) -> String {
    ChurnLevel::from_i16(level)
        .map(|l| l.name().to_owned())
        .unwrap_or_default()
}

fn stored(r: StoredRisk) -> ChurnRisk {
    ChurnRisk {
        account_id: r.account_id.to_string(),
        score: r.score,
        level: level_name(r.level),
        reasons: r.reasons,
        computed_at: to_optional_timestamp(Some(r.computed_at)),
    }
}

pub async fn dashboard(
    state: &State,
    caller: CallerContext,
    request: GetCustomerDashboardRequest,
) -> kit::Result<GetCustomerDashboardResponse> {
    authorize_read(&caller)?;
    let now = state.clock.now();
    let mut v = Violations::new();
    let filters = Filters::read_with(
        request.from.as_ref(),
        request.to.as_ref(),
        ("owner_id", &request.owner_id),
        ("team_id", &request.team_id),
        now,
        DEFAULT_COHORT_PERIOD,
        &mut v,
    )?;
    let p = filters.period;
    let asked = currency(&request.currency, &mut v);
    let lookback = match request.lookback_days {
        0 => DEFAULT_LOOKBACK_DAYS,
        days if (1..=MAX_LOOKBACK_DAYS).contains(&days) => days,
        _ => {
            v.add("lookback_days", "must be 1 to 3650 days");
            DEFAULT_LOOKBACK_DAYS
        }
    };
    let region = request.region.trim();
    if region.chars().count() > 100 {
        v.add("region", "is longer than 100 characters");
    }
    v.into_result()?;
    let tenant = caller.tenant_id;
    let scope = scope(&caller);
    let a = Accounts {
        selection: Selection {
            tenant,
            scope: &scope,
            owner: filters.owner,
            team: filters.team,
        },
        region: (!region.is_empty()).then_some(region),
    };
    let mut tx = state.snapshot(&caller).await?;
    let currency = match asked {
        Some(asked) => asked,
        None => store::usual_currency(&mut tx, tenant)
            .await?
            .unwrap_or_default(),
    };
    let accounts = store::count(&mut tx, &a).await?;
    let mut by = async |place| -> kit::Result<Vec<Count>> {
        Ok(counts(store::distribution(&mut tx, &a, place).await?))
    };
    let by_region = by(Place::Region).await?;
    let by_country = by(Place::Country).await?;
    let by_industry = by(Place::Industry).await?;
    let by_lifecycle = by(Place::Lifecycle)
        .await?
        .into_iter()
        .map(|c| Count {
            key: key_of(
                c.key
                    .parse::<i32>()
                    .ok()
                    .and_then(|n| LifecycleStage::try_from(n).ok())
                    .map(|s| s.as_str_name()),
                "LIFECYCLE_STAGE_",
            ),
            count: c.count,
        })
        .collect();
    let rfm = store::rfm(&mut tx, &a, &currency, now, Duration::days(lookback.into())).await?;
    let rfm_segments = SEGMENTS
        .iter()
        .map(|name| Count {
            key: (*name).to_owned(),
            count: rfm.iter().filter(|r| segment(r.r, r.f) == *name).count() as i64,
        })
        .collect();
    let rfm = rfm
        .into_iter()
        .take(RFM_ROWS)
        .map(|r| RfmAccount {
            account_id: r.account_id.to_string(),
            recency_days: r.recency_days,
            frequency: r.frequency,
            monetary: money(r.monetary),
            recency_score: r.r,
            frequency_score: r.f,
            monetary_score: r.m,
            segment: segment(r.r, r.f).to_owned(),
        })
        .collect();
    let mut cohorts: Vec<Cohort> = Vec::new();
    for (month, offset, count) in store::cohorts(&mut tx, &a, p).await? {
        if cohorts.last().is_none_or(|c| c.month != month) {
            cohorts.push(Cohort {
                month: month.clone(),
                accounts: 0,
                retained: Vec::new(),
            });
        }
        if let (Some(cohort), Ok(offset)) = (cohorts.last_mut(), usize::try_from(offset)) {
            if cohort.retained.len() <= offset {
                cohort.retained.resize(offset + 1, 0);
            }
            cohort.retained[offset] = count;
            if offset == 0 {
                cohort.accounts = count;
            }
        }
    }
    let lifetime = store::lifetime(&mut tx, &a, &currency).await?;
    let per = |total: Decimal, by: i64| {
        if by > 0 {
            money(total / Decimal::from(by))
        } else {
            String::new()
        }
    };
    let top = store::top_lifetime(&mut tx, &a, &currency, TOP_ACCOUNTS).await?;
    let levels = store::churn_levels(&mut tx, &a).await?;
    let at_risk = store::at_risk(&mut tx, &a, AT_RISK).await?;
    let sales = freshness::as_of(&mut tx, tenant, "sales").await?;
    let customers = freshness::as_of(&mut tx, tenant, "customers").await?;
    Ok(GetCustomerDashboardResponse {
        dashboard: Some(CustomerDashboard {
            currency,
            accounts,
            by_region,
            by_country,
            by_industry,
            by_lifecycle,
            rfm_segments,
            rfm,
            cohorts,
            customers: lifetime.customers,
            orders: lifetime.orders,
            revenue: money(lifetime.revenue),
            average_order_value: per(lifetime.revenue, lifetime.orders),
            orders_per_customer: per(Decimal::from(lifetime.orders), lifetime.customers),
            lifetime_value: per(lifetime.revenue, lifetime.customers),
            top_lifetime_values: top
                .into_iter()
                .map(|(account, orders, revenue)| Sum {
                    key: account.to_string(),
                    label: String::new(),
                    count: orders,
                    amount: money(revenue),
                })
                .collect(),
            churn_levels: [ChurnLevel::Low, ChurnLevel::Medium, ChurnLevel::High]
                .into_iter()
                .map(|level| Count {
                    key: level.name().to_owned(),
                    count: levels
                        .iter()
                        .find(|(l, _)| *l == level as i16)
                        .map_or(0, |(_, c)| *c),
                })
                .collect(),
            at_risk: at_risk.into_iter().map(stored).collect(),
            as_of: to_optional_timestamp(sales.min(customers).or(sales).or(customers)),
        }),
    })
}

pub async fn insights(
    state: &State,
    caller: CallerContext,
    request: GetAccountInsightsRequest,
) -> kit::Result<GetAccountInsightsResponse> {
    authorize_read(&caller)?;
    let account = parse_id("account_id", &request.account_id)?;
    let tenant = caller.tenant_id;
    let scope = scope(&caller);
    let selection = Selection {
        tenant,
        scope: &scope,
        owner: None,
        team: None,
    };
    let mut tx = state.snapshot(&caller).await?;
    if !store::visible(&mut tx, &selection, account).await? {
        return Err(Error::not_found("account", account));
    }
    let now = state.clock.now();
    let currency = accounts::invoice_currency(&mut tx, tenant, account)
        .await?
        .unwrap_or_default();
    let facts =
        accounts::credit_facts(&mut tx, tenant, account, &currency, now.date_naive()).await?;
    let grade = credit(&facts);
    let churn_facts = accounts::churn_facts(&mut tx, tenant, &[account], now).await?;
    // Only customers (an order) have a churn risk.
    let risk = churn_facts
        .first()
        .filter(|(_, f)| f.days_since_order.is_some())
        .map(|(_, f)| churn(f));
    let as_of = freshness::as_of(&mut tx, tenant, "sales").await?;
    Ok(GetAccountInsightsResponse {
        insights: Some(AccountInsights {
            account_id: account.to_string(),
            credit_grade: grade.grade.to_owned(),
            credit_reasons: grade.reasons,
            invoices: facts.invoices,
            invoices_paid: facts.paid,
            invoices_paid_late: facts.paid_late,
            average_days_to_pay: facts
                .average_days_to_pay
                .map(|d| d.normalize().to_string())
                .unwrap_or_default(),
            invoices_overdue: facts.overdue,
            overdue_amount: money(facts.overdue_amount),
            churn_risk: risk.map(|r| ChurnRisk {
                account_id: account.to_string(),
                score: r.score,
                level: r.level.name().to_owned(),
                reasons: r.reasons,
                computed_at: to_optional_timestamp(Some(now)),
            }),
            as_of: to_optional_timestamp(as_of),
            currency,
        }),
    })
}
