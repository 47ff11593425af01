use crm_proto::crm::common::v1::{Event, Money};
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::customers::v1::{self as people, Contact, CreateContactRequest};
use crm_proto::crm::marketing::v1::automation_service_client::AutomationServiceClient;
use crm_proto::crm::marketing::v1::campaign_service_client::CampaignServiceClient;
use crm_proto::crm::marketing::v1::consent_service_client::ConsentServiceClient;
use crm_proto::crm::marketing::v1::form_service_client::FormServiceClient;
use crm_proto::crm::marketing::v1::journey_service_client::JourneyServiceClient;
use crm_proto::crm::marketing::v1::loyalty_service_client::LoyaltyServiceClient;
use crm_proto::crm::marketing::v1::message_service_client::MessageServiceClient;
use crm_proto::crm::marketing::v1::*;
use kit::auth::{Role, Visibility};
use testkit::grpc::Authed;
use testkit::Services;
use uuid::Uuid;

pub use testkit::grpc::violated_fields;

pub struct Client {
    pub user: Uuid,
    pub campaigns: CampaignServiceClient<Authed>,
    pub consent: ConsentServiceClient<Authed>,
    pub messages: MessageServiceClient<Authed>,
    pub forms: FormServiceClient<Authed>,
    pub loyalty: LoyaltyServiceClient<Authed>,
    pub automations: AutomationServiceClient<Authed>,
    pub journeys: JourneyServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub segments: SegmentServiceClient<Authed>,
    pub activities: ActivityServiceClient<Authed>,
}

pub struct TestApp {
    pub services: Services,
    pub tenant: Uuid,
    /// The mail relay the service sends to.
    pub smtp: testkit::SmtpServer,
    /// Where lead actions reach the sales service (a closed port unless
    /// the test started it).
    pub sales_url: String,
    /// Where ticket actions reach the service desk (likewise).
    pub servicedesk_url: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        let mut services = Services::new();
        let config = services.config("customers").await;
        services.start("customers", customers::build(config)).await;
        let smtp = testkit::SmtpServer::start();
        let mut app = TestApp {
            tenant: services.tenant,
            services,
            smtp,
            sales_url: "http://127.0.0.1:9".into(),
            servicedesk_url: "http://127.0.0.1:9".into(),
        };
        app.start_marketing().await;
        app
    }

    /// The harness with the sales service too, for lead actions.
    pub async fn spawn_with_sales() -> Self {
        let mut app = TestApp::spawn().await;
        let config = sales::config::SalesConfig {
            service: app.services.config("sales").await,
            customers_url: app.services.url("customers"),
            scan_interval: std::time::Duration::from_secs(60),
        };
        app.services.start("sales", sales::build(config)).await;
        app.sales_url = app.services.url("sales");
        app.restart_marketing_with(|_| {}).await;
        app
    }

    /// The harness with the service desk too, for ticket actions.
    pub async fn spawn_with_servicedesk() -> Self {
        let mut app = TestApp::spawn().await;
        let config = servicedesk::config::ServiceDeskConfig::new(
            app.services.config("servicedesk").await,
            app.services.url("customers"),
        );
        app.services
            .start("servicedesk", servicedesk::build(config))
            .await;
        app.servicedesk_url = app.services.url("servicedesk");
        app.restart_marketing_with(|_| {}).await;
        app
    }

    /// The marketing service's configuration in this harness (its database,
    /// the customers service, the SMTP server, 200 messages a second).
    pub async fn marketing_config(&mut self) -> marketing::config::MarketingConfig {
        marketing::config::MarketingConfig {
            service: self.services.config("marketing").await,
            customers_url: self.services.url("customers"),
            scan_interval: std::time::Duration::from_millis(100),
            sending: marketing::config::SendingConfig::to(&self.smtp.url(), 200),
            service_tokens: std::sync::Arc::new(self.services.issuer.service_tokens("marketing")),
            automation: marketing::config::AutomationConfig::to(
                &self.sales_url,
                &self.servicedesk_url,
            ),
        }
    }

    /// (Re)starts the marketing service on its database.
    pub async fn start_marketing(&mut self) {
        let config = self.marketing_config().await;
        self.services
            .start("marketing", marketing::build(config))
            .await;
    }

    /// Restarts the marketing service sending `rate` messages a second.
    pub async fn restart_marketing_at(&mut self, rate: u32) {
        self.restart_marketing_with(|config| config.sending.rate_per_tenant = rate)
            .await;
    }

    /// Restarts the marketing service with its configuration adjusted.
    pub async fn restart_marketing_with(
        &mut self,
        adjust: impl FnOnce(&mut marketing::config::MarketingConfig),
    ) {
        self.stop_marketing().await;
        let mut config = self.marketing_config().await;
        adjust(&mut config);
        self.services
            .start("marketing", marketing::build(config))
            .await;
    }

    /// Stops the marketing service (it finishes the batch in hand).
    pub async fn stop_marketing(&mut self) {
        self.services
            .take("marketing")
            .stop()
            .await
            .expect("marketing stops");
    }

    pub fn client(&self, roles: &[Role], visibility: Visibility, teams: &[Uuid]) -> Client {
        self.client_in(self.tenant, Uuid::now_v7(), roles, visibility, teams)
    }

    pub fn admin(&self) -> Client {
        self.client(&[Role::Admin], Visibility::Tenant, &[])
    }

    /// Erases a contact in the customers service (as an admin of the tenant).
    pub async fn erase(&self, contact: &str) {
        let bearer = self.services.bearer(
            self.tenant,
            Uuid::now_v7(),
            &[Role::Admin],
            Visibility::Tenant,
            &[],
        );
        DataServiceClient::with_interceptor(self.services.channel("customers"), bearer)
            .erase_contact(people::EraseContactRequest {
                contact_id: contact.into(),
            })
            .await
            .expect("erase");
    }

    /// An admin of another tenant.
    pub fn stranger(&self) -> Client {
        self.client_in(
            Uuid::now_v7(),
            Uuid::now_v7(),
            &[Role::Admin],
            Visibility::Tenant,
            &[],
        )
    }

    /// A marketer who sees (and changes) only their own records.
    pub fn marketer(&self) -> Client {
        self.client(&[Role::Marketer], Visibility::Own, &[])
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
        let (m, c) = (
            self.services.channel("marketing"),
            self.services.channel("customers"),
        );
        Client {
            user,
            campaigns: CampaignServiceClient::with_interceptor(m.clone(), bearer.clone()),
            consent: ConsentServiceClient::with_interceptor(m.clone(), bearer.clone()),
            messages: MessageServiceClient::with_interceptor(m.clone(), bearer.clone()),
            forms: FormServiceClient::with_interceptor(m.clone(), bearer.clone()),
            loyalty: LoyaltyServiceClient::with_interceptor(m.clone(), bearer.clone()),
            automations: AutomationServiceClient::with_interceptor(m.clone(), bearer.clone()),
            journeys: JourneyServiceClient::with_interceptor(m, bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(c.clone(), bearer.clone()),
            accounts: AccountServiceClient::with_interceptor(c.clone(), bearer.clone()),
            segments: SegmentServiceClient::with_interceptor(c.clone(), bearer.clone()),
            activities: ActivityServiceClient::with_interceptor(c, bearer),
        }
    }

    /// Waits until an event of `event_type` about `subject` is on `domain`'s stream.
    pub async fn event(&self, domain: &str, event_type: &str, subject: &str) -> Event {
        self.services.event(domain, event_type, subject).await
    }
}

pub fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: currency.into(),
    })
}

pub fn named(name: &str) -> Campaign {
    Campaign {
        name: name.into(),
        r#type: CampaignType::Email as i32,
        ..Default::default()
    }
}

pub async fn create_campaign(client: &mut Client, campaign: Campaign) -> Campaign {
    client
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(campaign),
            request_id: String::new(),
        })
        .await
        .expect("create campaign")
        .into_inner()
        .campaign
        .expect("a campaign in the answer")
}

pub async fn create_contact(client: &mut Client, last_name: &str, email: &str) -> Contact {
    client
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(Contact {
                last_name: last_name.into(),
                emails: vec![people::Email {
                    address: email.into(),
                    primary: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("create contact")
        .into_inner()
        .contact
        .expect("a contact in the answer")
}

pub async fn set_consent(
    client: &mut Client,
    contact: &str,
    channel: people::Channel,
    status: people::ConsentStatus,
) {
    client
        .contacts
        .update_consent(people::UpdateConsentRequest {
            contact_id: contact.into(),
            channel: channel as i32,
            status: status as i32,
            source: "test".into(),
        })
        .await
        .expect("update consent");
}

pub async fn add_contacts(
    client: &mut Client,
    campaign: &str,
    contacts: &[&str],
) -> Result<AddCampaignMembersResponse, tonic::Status> {
    client
        .campaigns
        .add_campaign_members(AddCampaignMembersRequest {
            campaign_id: campaign.into(),
            contact_ids: contacts.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn members(client: &mut Client, campaign: &str) -> Vec<CampaignMember> {
    client
        .campaigns
        .list_campaign_members(ListCampaignMembersRequest {
            campaign_id: campaign.into(),
            ..Default::default()
        })
        .await
        .expect("list members")
        .into_inner()
        .members
}

pub async fn reachability(
    client: &mut Client,
    contact: &str,
    channel: people::Channel,
) -> Result<GetReachabilityResponse, tonic::Status> {
    client
        .consent
        .get_reachability(GetReachabilityRequest {
            contact_id: contact.into(),
            channel: channel as i32,
        })
        .await
        .map(|r| r.into_inner())
}

/// The tenant's sender identity (made once).
pub async fn identity(client: &mut Client) -> SenderIdentity {
    client
        .messages
        .create_sender_identity(CreateSenderIdentityRequest {
            identity: Some(SenderIdentity {
                from_address: "News@Acme.example".into(),
                from_name: "Acme News".into(),
                ..Default::default()
            }),
            request_id: "identity-1".into(),
        })
        .await
        .expect("identity")
        .into_inner()
        .identity
        .expect("identity")
}

/// An e-mail template with contact and account variables.
pub async fn template(client: &mut Client) -> Template {
    client
        .messages
        .create_template(CreateTemplateRequest {
            template: Some(Template {
                name: "Welcome".into(),
                subject: "Hello {{ contact.first_name }}".into(),
                html_body: "<p>Dear {{ contact.full_name }} of {{ account.name }}</p>".into(),
                text_body: "Dear {{ contact.full_name }} of {{ account.name }}".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("template")
        .into_inner()
        .template
        .expect("template")
}

/// A contact with an e-mail address and, optionally, e-mail consent.
pub async fn person(
    client: &mut Client,
    first: &str,
    email: &str,
    account: &str,
    consent: Option<people::ConsentStatus>,
) -> String {
    let contact = client
        .contacts
        .create_contact(people::CreateContactRequest {
            contact: Some(people::Contact {
                first_name: first.into(),
                last_name: "Tester".into(),
                account_id: account.into(),
                emails: vec![people::Email {
                    address: email.into(),
                    primary: true,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact");
    if let Some(status) = consent {
        set_consent(client, &contact.id, people::Channel::Email, status).await;
    }
    contact.id
}
