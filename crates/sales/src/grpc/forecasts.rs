//! ForecastService: quotas and forecast sums per period and owner or team.

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::forecast_service_server::ForecastService;
use crm_proto::crm::sales::v1::*;
use kit::access::Scope;
use kit::error::Violations;
use kit::input::{money, optional_date};
use kit::Error;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};

use super::{commit, handle, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::opportunity::cents;
use crate::domain::optional_id;
use crate::store::forecasts as store;

pub struct ForecastHandlers(pub SharedState);

fn period(
    start: &str,
    end: &str,
    prefix: &str,
    v: &mut Violations,
) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
    let start_field = format!("{prefix}period_start");
    let end_field = format!("{prefix}period_end");
    let s = v.check(optional_date(&start_field, start)).flatten();
    let e = v.check(optional_date(&end_field, end)).flatten();
    match (s, e) {
        (Some(s), Some(e)) if e >= s && (e - s).num_days() <= 366 * 2 => Some((s, e)),
        (Some(_), Some(_)) => {
            v.add(
                end_field,
                "must be on or after period_start, at most two years later",
            );
            None
        }
        (None, _) if start.is_empty() => {
            v.add(start_field, "is required");
            None
        }
        (_, None) if end.is_empty() => {
            v.add(end_field, "is required");
            None
        }
        _ => None,
    }
}

#[tonic::async_trait]
impl ForecastService for ForecastHandlers {
    async fn set_quota(
        &self,
        request: Request<SetQuotaRequest>,
    ) -> Result<Response<SetQuotaResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut quota = request
                .quota
                .ok_or_else(|| Error::invalid("quota", "is required"))?;
            let mut v = Violations::new();
            let user = v
                .check(optional_id("quota.user_id", &quota.user_id))
                .flatten();
            let team = v
                .check(optional_id("quota.team_id", &quota.team_id))
                .flatten();
            if user.is_some() == team.is_some() {
                v.add(
                    "quota.user_id",
                    "exactly one of user_id and team_id is required",
                );
            }
            let dates = period(&quota.period_start, &quota.period_end, "quota.", &mut v);
            let amount = quota.amount.clone().unwrap_or_default();
            let checked = money("quota.amount", &amount.amount, &amount.currency, &mut v);
            v.into_result()?;
            let (Some((start, end)), Some((amount, currency))) = (dates, checked) else {
                return Err(Error::invalid("quota", "is invalid"));
            };
            let values = store::QuotaValues {
                user,
                team,
                start,
                end,
                amount,
                currency: currency.clone(),
            };
            let mut tx = self.0.begin(&caller).await?;
            store::set_quota(&mut tx, caller.tenant_id, &values).await?;
            quota.amount = Some(Money {
                amount: amount.to_string(),
                currency,
            });
            let event = QuotaSet {
                quota: Some(quota.clone()),
            };
            // A person's or team's quotas, in the order they were set.
            let whose = user.or(team).unwrap_or(caller.tenant_id);
            self.0
                .outbox
                .enqueue(&mut tx, &caller, whose, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(SetQuotaResponse { quota: Some(quota) })
        })
        .await
    }

    async fn get_forecast(
        &self,
        request: Request<GetForecastRequest>,
    ) -> Result<Response<GetForecastResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let owner = v
                .check(optional_id("owner_id", &request.owner_id))
                .flatten();
            let team = v.check(optional_id("team_id", &request.team_id)).flatten();
            let dates = period(&request.period_start, &request.period_end, "", &mut v);
            let currency = request.currency.trim().to_ascii_uppercase();
            if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
                v.add(
                    "currency",
                    "must be a three-letter ISO 4217 code such as EUR",
                );
            }
            v.into_result()?;
            let Some((start, end)) = dates else {
                return Err(Error::invalid("period_start", "is invalid"));
            };
            let (visible_owner, visible_teams) = match scope(&caller) {
                Scope::Tenant => (None, None),
                Scope::Team { user, teams } => (user, Some(teams)),
                Scope::Own { user } => (user, Some(Vec::new())),
            };
            let query = store::ForecastQuery {
                start,
                end,
                owner,
                team,
                currency: currency.clone(),
                visible_owner,
                visible_teams,
            };
            let mut tx = self.0.begin(&caller).await?;
            let sums = store::sums(&mut tx, caller.tenant_id, &query).await?;
            let quota = store::quota(&mut tx, caller.tenant_id, &query).await?;
            let attainment = quota
                .filter(|q| !q.is_zero())
                .map(|q| {
                    format!(
                        "{:.1}",
                        (sums.closed_won * Decimal::ONE_HUNDRED / q).round_dp(1)
                    )
                })
                .unwrap_or_default();
            Ok(GetForecastResponse {
                forecast: Some(Forecast {
                    closed_won: cents(sums.closed_won, &currency),
                    commit: cents(sums.commit, &currency),
                    best_case: cents(sums.best_case, &currency),
                    pipeline: cents(sums.pipeline, &currency),
                    weighted_pipeline: cents(sums.weighted, &currency),
                    quota: quota.and_then(|q| cents(q, &currency)),
                    attainment_percent: attainment,
                    open_count: sums.open_count,
                    won_count: sums.won_count,
                }),
            })
        })
        .await
    }
}
