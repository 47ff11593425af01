use std::time::Duration;

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
use crm_proto::crm::sales::v1::forecast_service_client::ForecastServiceClient;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use crm_proto::crm::sales::v1::*;
use kit::auth::{BearerToken, Role, Visibility};
use kit::service::RunningService;
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

type Authed = InterceptedService<Channel, BearerToken>;

pub struct Client {
    pub user: Uuid,
    pub leads: LeadServiceClient<Authed>,
    pub pipelines: PipelineServiceClient<Authed>,
    pub opportunities: OpportunityServiceClient<Authed>,
    pub forecasts: ForecastServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub fields: FieldServiceClient<Authed>,
}

pub struct TestApp {
    pub nats: TestNats,
    pub issuer: TokenIssuer,
    pub tenant: Uuid,
    sales_channel: Channel,
    customers_channel: Channel,
    running: Vec<RunningService>,
    _dbs: (TestDatabase, TestDatabase),
}

impl TestApp {
    pub async fn spawn() -> Self {
        let (sales_db, customers_db, nats, issuer) = (
            TestDatabase::create().await,
            TestDatabase::create().await,
            TestNats::new(),
            TokenIssuer::new(),
        );
        let customers =
            customers::build(service_config("customers", &customers_db, &nats, &issuer))
                .await
                .expect("customers starts");
        let customers_url = format!("http://{}", customers.grpc_addr);
        let sales = sales::build(sales::config::SalesConfig {
            service: service_config("sales", &sales_db, &nats, &issuer),
            customers_url: customers_url.clone(),
            scan_interval: Duration::from_millis(200),
        })
        .await
        .expect("sales starts");
        let connect = |url: String| async move {
            Channel::from_shared(url).unwrap().connect().await.unwrap()
        };
        let sales_channel = connect(format!("http://{}", sales.grpc_addr)).await;
        let customers_channel = connect(customers_url).await;
        TestApp {
            nats,
            issuer,
            tenant: Uuid::now_v7(),
            sales_channel,
            customers_channel,
            running: vec![sales, customers],
            _dbs: (sales_db, customers_db),
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
        let mut claims = self.issuer.claims(tenant, user, roles, visibility);
        claims.teams = teams.to_vec();
        let bearer = BearerToken::new(&self.issuer.sign(&claims)).unwrap();
        let (s, c) = (self.sales_channel.clone(), self.customers_channel.clone());
        Client {
            user,
            leads: LeadServiceClient::with_interceptor(s.clone(), bearer.clone()),
            pipelines: PipelineServiceClient::with_interceptor(s.clone(), bearer.clone()),
            opportunities: OpportunityServiceClient::with_interceptor(s.clone(), bearer.clone()),
            forecasts: ForecastServiceClient::with_interceptor(s, bearer.clone()),
            accounts: AccountServiceClient::with_interceptor(c.clone(), bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(c.clone(), bearer.clone()),
            fields: FieldServiceClient::with_interceptor(c, bearer),
        }
    }

    /// Waits until an event of `event_type` about `subject` is on `domain`'s stream.
    pub async fn event(&self, domain: &str, event_type: &str, subject: &str) -> Event {
        self.nats.event(domain, event_type, subject).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let running = std::mem::take(&mut self.running);
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(async { drop(running) });
            }
        })
        .join();
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

pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

impl TestApp {
    pub fn customers_channel(&self) -> Channel {
        self.customers_channel.clone()
    }
}

impl TestApp {
    /// Stops the customers service (fault tests).
    pub async fn stop_customers(&mut self) {
        if self.running.len() == 2 {
            if let Some(customers) = self.running.pop() {
                customers.stop().await.expect("customers stops");
            }
        }
    }

    pub fn sales_db(&self) -> &TestDatabase {
        &self._dbs.0
    }

    pub fn sales_channel(&self) -> Channel {
        self.sales_channel.clone()
    }
}
