//! The sales dashboard: funnel, win rate, pipeline, quota, leaderboard,
//! what sold, why deals were lost, and where leads came from.

use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1::LeadSource;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::input::optional_id;
use kit::time::to_optional_timestamp;
use rust_decimal::Decimal;

use super::{currency, Filters, State};
use crate::domain::access::{authorize_read, scope};
use crate::domain::{key_of, money, percent, share};
use crate::store::leads::{self, Leads};
use crate::store::sales::{self as store, Breakdown, Deals, Reach, StageRow};
use crate::store::{freshness, Selection};

/// The source's StageKind numbers.
const OPEN: i16 = 1;
const WON: i16 = 2;

fn sum(s: store::Sum) -> Sum {
    Sum {
        key: s.key,
        label: s.label,
        count: s.count,
        amount: money(s.amount),
    }
}

/// The funnel over the pipeline's open and won stages, in order.
fn funnel(stages: &[StageRow], reach: &[Reach]) -> Vec<FunnelStep> {
    let won = |r: &Reach| r.status == WON;
    let mut steps: Vec<FunnelStep> = stages
        .iter()
        .filter(|s| s.kind == OPEN || s.kind == WON)
        .map(|s| {
            let reached = reach
                .iter()
                .filter(|r| match s.kind {
                    OPEN => won(r) || r.furthest.is_some_and(|f| f >= s.position),
                    _ => won(r) && r.stage_id == Some(s.id),
                })
                .map(|r| r.deals)
                .sum();
            FunnelStep {
                stage_id: s.id.to_string(),
                name: s.name.clone(),
                reached,
                conversion_percent: String::new(),
            }
        })
        .collect();
    // Open stages first in pipeline order, then the won stages.
    steps.sort_by_key(|step| {
        stages
            .iter()
            .find(|s| s.id.to_string() == step.stage_id)
            .map(|s| (s.kind == WON, s.position))
    });
    let next: Vec<i64> = steps.iter().skip(1).map(|s| s.reached).collect();
    for (step, next) in steps.iter_mut().zip(next) {
        step.conversion_percent = share(next, step.reached);
    }
    steps
}

pub async fn dashboard(
    state: &State,
    caller: CallerContext,
    request: GetSalesDashboardRequest,
) -> kit::Result<GetSalesDashboardResponse> {
    authorize_read(&caller)?;
    let mut v = Violations::new();
    let filters = Filters::read(
        request.from.as_ref(),
        request.to.as_ref(),
        ("owner_id", &request.owner_id),
        ("team_id", &request.team_id),
        state.clock.now(),
        &mut v,
    )?;
    let pipeline = v
        .check(optional_id("pipeline_id", &request.pipeline_id))
        .flatten();
    let asked = currency(&request.currency, &mut v);
    let region = request.region.trim();
    if region.chars().count() > 100 {
        v.add("region", "is longer than 100 characters");
    }
    v.into_result()?;
    let tenant = caller.tenant_id;
    let scope = scope(&caller);
    let p = filters.period;
    let selection = Selection {
        tenant,
        scope: &scope,
        owner: filters.owner,
        team: filters.team,
    };
    let mut tx = state.snapshot(&caller).await?;
    let currency = match asked {
        Some(asked) => asked,
        None => store::usual_currency(&mut tx, tenant)
            .await?
            .unwrap_or_default(),
    };
    let region = (!region.is_empty()).then_some(region);
    let deals = Deals {
        selection,
        pipeline,
        region,
        currency: &currency,
    };
    let shown = match pipeline {
        Some(pipeline) => Some(pipeline),
        None => store::default_pipeline(&mut tx, tenant).await?,
    };
    let (funnel, open_by_stage) = match shown {
        Some(shown) => {
            let stages = store::stages(&mut tx, tenant, shown).await?;
            let in_pipeline = Deals {
                pipeline: Some(shown),
                ..deals
            };
            let reach = store::reach(&mut tx, &in_pipeline, p).await?;
            let open = store::sums(&mut tx, &in_pipeline, p, Breakdown::OpenByStage).await?;
            let by_stage = stages
                .iter()
                .filter(|s| s.kind == OPEN)
                .map(|s| {
                    let found = open.iter().find(|o| o.key == s.id.to_string());
                    Sum {
                        key: s.id.to_string(),
                        label: s.name.clone(),
                        count: found.map_or(0, |o| o.count),
                        amount: money(found.map_or(Decimal::ZERO, |o| o.amount)),
                    }
                })
                .collect();
            (funnel(&stages, &reach), by_stage)
        }
        None => (Vec::new(), Vec::new()),
    };
    let figures = store::figures(&mut tx, &deals, p).await?;
    let mut breakdown = async |b| -> kit::Result<Vec<Sum>> {
        Ok(store::sums(&mut tx, &deals, p, b)
            .await?
            .into_iter()
            .map(sum)
            .collect())
    };
    let open_by_owner = breakdown(Breakdown::OpenByOwner).await?;
    let open_by_close_month = breakdown(Breakdown::OpenByCloseMonth).await?;
    let leaderboard = breakdown(Breakdown::WonByOwner).await?;
    let won_by_account = breakdown(Breakdown::WonByAccount).await?;
    let won_by_campaign = breakdown(Breakdown::WonByCampaign).await?;
    let won_by_product = store::won_by_product(&mut tx, &deals, p).await?;
    let lost_reasons = store::lost_reasons(&mut tx, &deals, p).await?;
    let competitors = store::competitors(&mut tx, &deals, p).await?;
    let quota = store::quota(&mut tx, &selection, &currency, p).await?;
    let leads = Leads { selection, region };
    let sources = leads::by_source(&mut tx, &leads, &currency, p).await?;
    let response = leads::median_response(&mut tx, &leads, p).await?;
    let as_of = freshness::as_of(&mut tx, tenant, "sales").await?;
    Ok(GetSalesDashboardResponse {
        dashboard: Some(SalesDashboard {
            currency: currency.clone(),
            pipeline_id: shown.map(|p| p.to_string()).unwrap_or_default(),
            funnel,
            won: figures.won,
            lost: figures.lost,
            win_rate_percent: share(figures.won, figures.won + figures.lost),
            won_amount: money(figures.won_amount),
            average_deal_size: figures.average_deal_size.map(money).unwrap_or_default(),
            average_cycle_days: figures
                .average_cycle_days
                .map(|d| d.normalize().to_string())
                .unwrap_or_default(),
            open: figures.open,
            open_amount: money(figures.open_amount),
            weighted_amount: money(figures.weighted_amount),
            open_by_stage,
            open_by_owner,
            open_by_close_month,
            quota: quota.map(money).unwrap_or_default(),
            attainment_percent: quota
                .map(|q| percent(figures.won_amount, q))
                .unwrap_or_default(),
            leaderboard,
            won_by_account,
            won_by_campaign,
            won_by_product: won_by_product.into_iter().map(sum).collect(),
            lost_reasons: lost_reasons
                .into_iter()
                .map(|(key, count)| Count { key, count })
                .collect(),
            competitors: competitors
                .into_iter()
                .map(|(competitor, won, lost)| CompetitorRecord {
                    competitor,
                    won,
                    lost,
                })
                .collect(),
            lead_sources: sources
                .into_iter()
                .map(|s| LeadSourceFigures {
                    source: key_of(
                        LeadSource::try_from(i32::from(s.source))
                            .ok()
                            .map(|e| e.as_str_name()),
                        "LEAD_SOURCE_",
                    ),
                    leads: s.leads,
                    converted: s.converted,
                    conversion_percent: share(s.converted, s.leads),
                    won_amount: money(s.won_amount),
                })
                .collect(),
            median_lead_response_seconds: response.map_or(0, |s| s.round() as i64),
            as_of: to_optional_timestamp(as_of),
        }),
    })
}
