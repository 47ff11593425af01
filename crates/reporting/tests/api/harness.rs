use std::time::Duration;

use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::reporting::v1::dashboard_service_client::DashboardServiceClient;
use crm_proto::crm::reporting::v1::reconcile_service_client::ReconcileServiceClient;
use crm_proto::crm::reporting::v1::report_service_client::ReportServiceClient;
use crm_proto::crm::sales::v1::catalog_service_client::CatalogServiceClient;
use crm_proto::crm::sales::v1::forecast_service_client::ForecastServiceClient;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::order_service_client::OrderServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use crm_proto::crm::sales::v1::quote_service_client::QuoteServiceClient;
use crm_proto::crm::servicedesk::v1::satisfaction_service_client::SatisfactionServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use kit::auth::{Role, Visibility};
use testkit::grpc::Authed;
use testkit::Services;
use uuid::Uuid;

pub use testkit::grpc::violated_fields;

pub struct Client {
    pub dashboards: DashboardServiceClient<Authed>,
    pub reports: ReportServiceClient<Authed>,
    pub reconcile: ReconcileServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub activities: ActivityServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub pipelines: PipelineServiceClient<Authed>,
    pub opportunities: OpportunityServiceClient<Authed>,
    pub forecasts: ForecastServiceClient<Authed>,
    pub leads: LeadServiceClient<Authed>,
    pub catalog: CatalogServiceClient<Authed>,
    pub quotes: QuoteServiceClient<Authed>,
    pub orders: OrderServiceClient<Authed>,
    pub tickets: TicketServiceClient<Authed>,
    pub satisfaction: SatisfactionServiceClient<Authed>,
}

pub struct TestApp {
    pub services: Services,
    pub tenant: Uuid,
    /// What the service desk signs survey links with.
    pub survey_key: kit::links::LinkKey,
    /// Where reporting mails scheduled reports.
    pub smtp: testkit::SmtpServer,
    config: reporting::config::ReportingConfig,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_at(kit::clock::Clock::system()).await
    }

    /// Reporting on `clock` (periods, the churn scan's "now"), scanning
    /// for due churn risks every 100 ms.
    pub async fn spawn_at(clock: kit::clock::Clock) -> Self {
        let mut services = Services::new();
        let config = services.config("customers").await;
        services.start("customers", customers::build(config)).await;
        let sales = sales::config::SalesConfig {
            service: services.config("sales").await,
            customers_url: services.url("customers"),
            scan_interval: Duration::from_millis(200),
        };
        services.start("sales", sales::build(sales)).await;
        let survey_key = kit::links::LinkKey::random();
        let desk = servicedesk::config::ServiceDeskConfig {
            link_key: Some(survey_key.clone()),
            ..servicedesk::config::ServiceDeskConfig::new(
                services.config("servicedesk").await,
                services.url("customers"),
            )
        };
        services
            .start("servicedesk", servicedesk::build(desk))
            .await;
        let smtp = testkit::SmtpServer::start();
        let config = reporting::config::ReportingConfig {
            clock,
            scan_interval: Duration::from_millis(100),
            smtp_url: Some(smtp.url()),
            sales_url: Some(services.url("sales")),
            servicedesk_url: Some(services.url("servicedesk")),
            ..reporting::config::ReportingConfig::new(services.config("reporting").await)
        };
        services
            .start("reporting", reporting::build(config.clone()))
            .await;
        TestApp {
            tenant: services.tenant,
            services,
            survey_key,
            smtp,
            config,
        }
    }

    /// A second reporting pod on the same database and streams.
    pub async fn second_pod(&mut self) {
        let mut config = self.config.clone();
        config.service.grpc_addr = "127.0.0.1:0".parse().expect("an address");
        config.service.admin_addr = "127.0.0.1:0".parse().expect("an address");
        self.services
            .start("reporting-2", reporting::build(config))
            .await;
    }

    pub fn client(&self, roles: &[Role], visibility: Visibility, teams: &[Uuid]) -> Client {
        self.client_in(self.tenant, roles, visibility, teams)
    }

    /// A client acting as `user` (a rep whose records are counted).
    pub fn user(
        &self,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        self.client_as(self.tenant, user, roles, visibility, teams)
    }

    pub fn admin(&self) -> Client {
        self.client(&[Role::Admin], Visibility::Tenant, &[])
    }

    pub fn client_in(
        &self,
        tenant: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        self.client_as(tenant, Uuid::now_v7(), roles, visibility, teams)
    }

    fn client_as(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        let bearer = self.services.bearer(tenant, user, roles, visibility, teams);
        let desk = self.services.channel("servicedesk");
        let (sales, customers) = (
            self.services.channel("sales"),
            self.services.channel("customers"),
        );
        Client {
            dashboards: DashboardServiceClient::with_interceptor(
                self.services.channel("reporting"),
                bearer.clone(),
            ),
            reports: ReportServiceClient::with_interceptor(
                self.services.channel("reporting"),
                bearer.clone(),
            ),
            reconcile: ReconcileServiceClient::with_interceptor(
                self.services.channel("reporting"),
                bearer.clone(),
            ),
            accounts: AccountServiceClient::with_interceptor(customers.clone(), bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(customers.clone(), bearer.clone()),
            activities: ActivityServiceClient::with_interceptor(customers, bearer.clone()),
            pipelines: PipelineServiceClient::with_interceptor(sales.clone(), bearer.clone()),
            opportunities: OpportunityServiceClient::with_interceptor(
                sales.clone(),
                bearer.clone(),
            ),
            forecasts: ForecastServiceClient::with_interceptor(sales.clone(), bearer.clone()),
            leads: LeadServiceClient::with_interceptor(sales.clone(), bearer.clone()),
            catalog: CatalogServiceClient::with_interceptor(sales.clone(), bearer.clone()),
            quotes: QuoteServiceClient::with_interceptor(sales.clone(), bearer.clone()),
            orders: OrderServiceClient::with_interceptor(sales, bearer.clone()),
            tickets: TicketServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            satisfaction: SatisfactionServiceClient::with_interceptor(desk, bearer),
        }
    }
}

/// A pipeline of three stages: Qualify (open, 50%), Won and Lost.
pub async fn won_lost_pipeline(client: &mut Client) -> crm_proto::crm::sales::v1::Pipeline {
    use crm_proto::crm::sales::v1 as sales;
    client
        .pipelines
        .create_pipeline(sales::CreatePipelineRequest {
            pipeline: Some(sales::Pipeline {
                name: "New business".into(),
                stages: [
                    ("Qualify", sales::StageKind::Open),
                    ("Won", sales::StageKind::Won),
                    ("Lost", sales::StageKind::Lost),
                ]
                .into_iter()
                .map(|(name, kind)| sales::Stage {
                    name: name.into(),
                    probability: 50,
                    kind: kind as i32,
                    ..Default::default()
                })
                .collect(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("pipeline")
        .into_inner()
        .pipeline
        .expect("pipeline")
}
