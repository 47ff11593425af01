use std::time::Duration;

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
use crm_proto::crm::sales::v1::forecast_service_client::ForecastServiceClient;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use crm_proto::crm::sales::v1::*;
use kit::auth::{Role, Visibility};
use testkit::{Services, TestDatabase};
use tonic::transport::Channel;
use uuid::Uuid;

use testkit::grpc::Authed;

pub struct Client {
    pub user: Uuid,
    pub leads: LeadServiceClient<Authed>,
    pub pipelines: PipelineServiceClient<Authed>,
    pub opportunities: OpportunityServiceClient<Authed>,
    pub forecasts: ForecastServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub fields: FieldServiceClient<Authed>,
    pub activities: ActivityServiceClient<Authed>,
}

pub struct TestApp {
    pub services: Services,
    pub tenant: Uuid,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let mut services = Services::new();
        let config = services.config("customers").await;
        services.start("customers", customers::build(config)).await;
        let config = sales::config::SalesConfig {
            service: services.config("sales").await,
            customers_url: services.url("customers"),
            scan_interval: Duration::from_millis(200),
        };
        services.start("sales", sales::build(config)).await;
        TestApp {
            tenant: services.tenant,
            services,
        }
    }

    pub fn client(&self, roles: &[Role], visibility: Visibility, teams: &[Uuid]) -> Client {
        self.client_in(self.tenant, Uuid::now_v7(), roles, visibility, teams)
    }

    pub fn admin(&self) -> Client {
        self.client(&[Role::Admin], Visibility::Tenant, &[])
    }

    pub fn client_in(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        let bearer = self.services.bearer(tenant, user, roles, visibility, teams);
        let (s, c) = (
            self.services.channel("sales"),
            self.services.channel("customers"),
        );
        Client {
            user,
            leads: LeadServiceClient::with_interceptor(s.clone(), bearer.clone()),
            pipelines: PipelineServiceClient::with_interceptor(s.clone(), bearer.clone()),
            opportunities: OpportunityServiceClient::with_interceptor(s.clone(), bearer.clone()),
            forecasts: ForecastServiceClient::with_interceptor(s, bearer.clone()),
            accounts: AccountServiceClient::with_interceptor(c.clone(), bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(c.clone(), bearer.clone()),
            fields: FieldServiceClient::with_interceptor(c.clone(), bearer.clone()),
            activities: ActivityServiceClient::with_interceptor(c, bearer),
        }
    }

    /// Waits until an event of `event_type` about `subject` is on `domain`'s stream.
    pub async fn event(&self, domain: &str, event_type: &str, subject: &str) -> Event {
        self.services.event(domain, event_type, subject).await
    }
}

pub fn stage(name: &str, probability: i32, kind: StageKind) -> Stage {
    Stage {
        name: name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    }
}

/// A default pipeline: Qualify (10), Propose (50), Negotiate (80), Won, Lost.
pub async fn pipeline(client: &mut Client) -> Pipeline {
    client
        .pipelines
        .create_pipeline(CreatePipelineRequest {
            request_id: String::new(),
            pipeline: Some(Pipeline {
                name: "New business".into(),
                stages: vec![
                    stage("Qualify", 10, StageKind::Open),
                    stage("Propose", 50, StageKind::Open),
                    stage("Negotiate", 80, StageKind::Open),
                    stage("Won", 100, StageKind::Won),
                    stage("Lost", 0, StageKind::Lost),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("pipeline")
        .into_inner()
        .pipeline
        .unwrap()
}

pub fn money(amount: &str) -> Option<crm_proto::crm::common::v1::Money> {
    Some(crm_proto::crm::common::v1::Money {
        amount: amount.into(),
        currency: "EUR".into(),
    })
}

pub use testkit::grpc::violated_fields;

impl TestApp {
    pub fn customers_channel(&self) -> Channel {
        self.services.channel("customers")
    }

    pub fn sales_channel(&self) -> Channel {
        self.services.channel("sales")
    }

    /// Stops the customers service (fault tests).
    pub async fn stop_customers(&mut self) {
        let customers = self.services.take("customers");
        customers.stop().await.expect("customers stops");
    }

    pub fn sales_db(&self) -> &TestDatabase {
        self.services.db("sales")
    }
}
