//! The service dashboard: volume, backlog, response and resolution times,
//! satisfaction, SLA compliance, NPS, week by week and per agent.

use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::servicedesk::v1::{SlaMetric, TicketChannel, TicketType};
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::time::to_optional_timestamp;

use super::{Filters, State};
use crate::domain::access::{authorize_read, scope};
use crate::domain::{key_of, share};
use crate::store::tickets::{self, Dimension};
use crate::store::{freshness, Selection};

fn counts(rows: Vec<(i16, i64)>, name: impl Fn(i32) -> String) -> Vec<Count> {
    rows.into_iter()
        .map(|(value, count)| Count {
            key: name(i32::from(value)),
            count,
        })
        .collect()
}

/// Promoters minus detractors in percent of the answers, rounded.
fn nps_score(answers: i64, promoters: i64, detractors: i64) -> i32 {
    if answers == 0 {
        return 0;
    }
    let score = ((promoters - detractors) * 100) as f64 / answers as f64;
    score.round() as i32
}

fn seconds(median: Option<f64>) -> i64 {
    median.map_or(0, |s| s.round() as i64)
}

pub async fn dashboard(
    state: &State,
    caller: CallerContext,
    request: GetServiceDashboardRequest,
) -> kit::Result<GetServiceDashboardResponse> {
    authorize_read(&caller)?;
    let mut v = Violations::new();
    let now = state.clock.now();
    let filters = Filters::read(
        request.from.as_ref(),
        request.to.as_ref(),
        ("assignee_id", &request.assignee_id),
        ("group_id", &request.group_id),
        now,
        &mut v,
    )?;
    v.into_result()?;
    let p = filters.period;
    let scope = scope(&caller);
    let selection = Selection {
        tenant: caller.tenant_id,
        scope: &scope,
        owner: filters.owner,
        team: filters.team,
    };
    // NPS is about accounts: the caller's visibility of them, not the
    // ticket filters.
    let accounts = Selection {
        owner: None,
        team: None,
        ..selection
    };
    let mut tx = state.snapshot(&caller).await?;
    let figures = tickets::figures(&mut tx, &selection, p).await?;
    let medians = tickets::medians(&mut tx, &selection, p).await?;
    let whole = medians.iter().find(|m| m.whole);
    let of_agent = |agent| {
        medians
            .iter()
            .find(|m| !m.whole && m.owner_id == Some(agent))
    };
    let by_channel = tickets::created_by(&mut tx, &selection, p, Dimension::Channel).await?;
    let by_type = tickets::created_by(&mut tx, &selection, p, Dimension::Type).await?;
    let by_age = tickets::backlog_by_age(&mut tx, &selection, now).await?;
    let (solved, compliant) = tickets::compliance(&mut tx, &selection, p).await?;
    let breaches = tickets::breaches_by_metric(&mut tx, &selection, p).await?;
    let nps = tickets::nps_answers(&mut tx, &accounts, p, false).await?;
    let nps_weeks = tickets::nps_answers(&mut tx, &accounts, p, true).await?;
    let weeks = tickets::weeks(&mut tx, &selection, p).await?;
    let agents = tickets::agents(&mut tx, &selection, p).await?;
    let as_of = freshness::as_of(&mut tx, caller.tenant_id, "servicedesk").await?;
    let (nps_responses, promoters, detractors) = nps
        .first()
        .map_or((0, 0, 0), |(_, n, pro, de)| (*n, *pro, *de));
    // Weeks with tickets or NPS answers, in order.
    let mut week_names: Vec<&str> = weeks
        .iter()
        .map(|w| w.week.as_str())
        .chain(nps_weeks.iter().map(|(w, ..)| w.as_str()))
        .collect();
    week_names.sort_unstable();
    week_names.dedup();
    let weeks = week_names
        .into_iter()
        .map(|name| {
            let w = weeks.iter().find(|w| w.week == name);
            let n = nps_weeks.iter().find(|(w, ..)| w == name);
            ServiceWeek {
                week: name.to_owned(),
                created: w.map_or(0, |w| w.created),
                solved: w.map_or(0, |w| w.solved),
                csat_responses: w.map_or(0, |w| w.csat_responses),
                csat_average: w.and_then(|w| w.csat_average.clone()).unwrap_or_default(),
                nps_responses: n.map_or(0, |n| n.1),
                nps_score: n.map_or(0, |n| nps_score(n.1, n.2, n.3)),
            }
        })
        .collect();
    Ok(GetServiceDashboardResponse {
        dashboard: Some(ServiceDashboard {
            created: figures.created,
            solved: figures.solved,
            by_channel: counts(by_channel, |c| {
                key_of(
                    TicketChannel::try_from(c).ok().map(|e| e.as_str_name()),
                    "TICKET_CHANNEL_",
                )
            }),
            by_type: counts(by_type, |t| {
                key_of(
                    TicketType::try_from(t).ok().map(|e| e.as_str_name()),
                    "TICKET_TYPE_",
                )
            }),
            backlog: figures.backlog,
            backlog_by_age: by_age
                .into_iter()
                .map(|(key, count)| Count { key, count })
                .collect(),
            median_first_response_seconds: seconds(whole.and_then(|m| m.first_response)),
            median_resolution_seconds: seconds(whole.and_then(|m| m.resolution)),
            csat_responses: figures.csat_responses,
            csat_average: figures.csat_average.unwrap_or_default(),
            as_of: to_optional_timestamp(as_of),
            sla_compliance_percent: share(compliant, solved),
            breaches_by_metric: counts(breaches, |m| {
                key_of(
                    SlaMetric::try_from(m).ok().map(|e| e.as_str_name()),
                    "SLA_METRIC_",
                )
            }),
            nps_responses,
            nps_score: nps_score(nps_responses, promoters, detractors),
            weeks,
            agents: agents
                .into_iter()
                .map(|a| AgentFigures {
                    agent_id: a.owner_id.to_string(),
                    solved: a.solved,
                    median_first_response_seconds: seconds(
                        of_agent(a.owner_id).and_then(|m| m.first_response),
                    ),
                    median_resolution_seconds: seconds(
                        of_agent(a.owner_id).and_then(|m| m.resolution),
                    ),
                    csat_responses: a.csat_responses,
                    csat_average: a.csat_average.unwrap_or_default(),
                    breaches: a.breaches,
                })
                .collect(),
        }),
    })
}
