//! DashboardService: each dashboard's method hands the call to its
//! module, which reads the request, checks the caller and counts.

use crm_proto::crm::reporting::v1::dashboard_service_server::DashboardService;
use crm_proto::crm::reporting::v1::*;
use tonic::{Request, Response, Status};

use super::{handle, SharedState};

pub struct DashboardHandlers(pub SharedState);

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

    async fn get_marketing_dashboard(
        &self,
        request: Request<GetMarketingDashboardRequest>,
    ) -> Result<Response<GetMarketingDashboardResponse>, Status> {
        handle(request, |caller, request| {
            super::marketing::dashboard(&self.0, caller, request)
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
        handle(request, |caller, request| {
            super::service::dashboard(&self.0, caller, request)
        })
        .await
    }
}
