//! DashboardService: the dashboards, computed from the read models over
//! what the caller may see.

use crm_proto::crm::reporting::v1::dashboard_service_server::DashboardService;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::servicedesk::v1::{TicketChannel, TicketType};
use kit::error::Violations;
use kit::time::to_optional_timestamp;
use tonic::{Request, Response, Status};

use super::{handle, Filters, SharedState};
use crate::domain::access::{authorize_read, scope};
use crate::domain::key_of;
use crate::store::freshness;
use crate::store::tickets::{self, Dimension};
use crate::store::Selection;

pub struct DashboardHandlers(pub SharedState);

fn counts(rows: Vec<(i16, i64)>, name: impl Fn(i32) -> String) -> Vec<Count> {
    rows.into_iter()
        .map(|(value, count)| Count {
            key: name(i32::from(value)),
            count,
        })
        .collect()
}

#[tonic::async_trait]
impl DashboardService for DashboardHandlers {
    async fn get_sales_dashboard(
        &self,
        request: Request<GetSalesDashboardRequest>,
    ) -> Result<Response<GetSalesDashboardResponse>, Status> {
        handle(request, |caller, request| {
            super::sales::dashboard(&self.0, caller, request)
        })
        .await
    }

    async fn get_customer_dashboard(
        &self,
        request: Request<GetCustomerDashboardRequest>,
    ) -> Result<Response<GetCustomerDashboardResponse>, Status> {
        handle(request, |caller, request| {
            super::customers::dashboard(&self.0, caller, request)
        })
        .await
    }

    async fn get_account_insights(
        &self,
        request: Request<GetAccountInsightsRequest>,
    ) -> Result<Response<GetAccountInsightsResponse>, Status> {
        handle(request, |caller, request| {
            super::customers::insights(&self.0, caller, request)
        })
        .await
    }

    async fn get_activity_dashboard(
        &self,
        request: Request<GetActivityDashboardRequest>,
    ) -> Result<Response<GetActivityDashboardResponse>, Status> {
        handle(request, |caller, request| {
            super::activities::dashboard(&self.0, caller, request)
        })
        .await
    }

    async fn get_service_dashboard(
        &self,
        request: Request<GetServiceDashboardRequest>,
    ) -> Result<Response<GetServiceDashboardResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize_read(&caller)?;
            let mut v = Violations::new();
            let now = self.0.clock.now();
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
            let mut tx = self.0.begin(&caller).await?;
            let figures = tickets::figures(&mut tx, &selection, p).await?;
            let by_channel =
                tickets::created_by(&mut tx, &selection, p, Dimension::Channel).await?;
            let by_type = tickets::created_by(&mut tx, &selection, p, Dimension::Type).await?;
            let by_age = tickets::backlog_by_age(&mut tx, &selection, now).await?;
            let as_of = freshness::as_of(&mut tx, caller.tenant_id, "servicedesk").await?;
            let seconds = |median: Option<f64>| median.map_or(0, |s| s.round() as i64);
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
                    median_first_response_seconds: seconds(figures.median_first_response),
                    median_resolution_seconds: seconds(figures.median_resolution),
                    csat_responses: figures.csat_responses,
                    csat_average: figures.csat_average.unwrap_or_default(),
                    as_of: to_optional_timestamp(as_of),
                }),
            })
        })
        .await
    }
}
