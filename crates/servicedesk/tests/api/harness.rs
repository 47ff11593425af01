use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::{self as people};
use crm_proto::crm::servicedesk::v1::channel_service_client::ChannelServiceClient;
use crm_proto::crm::servicedesk::v1::feedback_service_client::FeedbackServiceClient;
use crm_proto::crm::servicedesk::v1::knowledge_service_client::KnowledgeServiceClient;
use crm_proto::crm::servicedesk::v1::macro_service_client::MacroServiceClient;
use crm_proto::crm::servicedesk::v1::portal_service_client::PortalServiceClient;
use crm_proto::crm::servicedesk::v1::routing_service_client::RoutingServiceClient;
use crm_proto::crm::servicedesk::v1::satisfaction_service_client::SatisfactionServiceClient;
use crm_proto::crm::servicedesk::v1::search_service_client::SearchServiceClient;
use crm_proto::crm::servicedesk::v1::sla_service_client::SlaServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_job_service_client::TicketJobServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use kit::clock::Clock;
use testkit::grpc::Authed;
use testkit::Services;
use uuid::Uuid;

pub use testkit::grpc::violated_fields;

pub struct Client {
    pub user: Uuid,
    pub tickets: TicketServiceClient<Authed>,
    pub slas: SlaServiceClient<Authed>,
    pub routing: RoutingServiceClient<Authed>,
    pub knowledge: KnowledgeServiceClient<Authed>,
    pub search: SearchServiceClient<Authed>,
    pub channels: ChannelServiceClient<Authed>,
    pub satisfaction: SatisfactionServiceClient<Authed>,
    pub feedback: FeedbackServiceClient<Authed>,
    pub macros: MacroServiceClient<Authed>,
    pub jobs: TicketJobServiceClient<Authed>,
    /// The gateway's public support pages ask this (the service role).
    pub portal: PortalServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub activities: ActivityServiceClient<Authed>,
}

pub struct TestApp {
    pub services: Services,
    pub tenant: Uuid,
    /// The time SLA clocks read: moved by tests, never slept through.
    pub clock: Clock,
    /// Where the desk takes inbound mail (its SMTP listener).
    pub mail_in: std::net::SocketAddr,
    /// The relay replies go out through: a real SMTP server in the test.
    pub mail_out: testkit::SmtpServer,
    /// What survey links are signed with.
    pub survey_key: kit::links::LinkKey,
}

/// Where survey links point in tests.
pub const PUBLIC_URL: &str = "https://crm.test";

/// Scanners look for due SLA alarms this often in tests.
const SLA_SCAN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// [`Self::spawn`] with the desk's settings adjusted first.
    pub async fn spawn_with(
        adjust: impl FnOnce(&mut servicedesk::config::ServiceDeskConfig),
    ) -> Self {
        let mut services = Services::new();
        let config = services.config("customers").await;
        services.start("customers", customers::build(config)).await;
        // Whole seconds, as timestamps on the wire carry them.
        let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0)
            .expect("now is a valid time");
        let clock = Clock::manual(start);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let mail_in = listener.local_addr().expect("the bound address");
        let mail_out = testkit::SmtpServer::start();
        let survey_key = kit::links::LinkKey::random();
        let mut config = servicedesk::config::ServiceDeskConfig {
            clock: clock.clone(),
            sla_scan_interval: SLA_SCAN_INTERVAL,
            smtp_listener: Some(std::sync::Arc::new(listener)),
            smtp_url: Some(mail_out.url()),
            mail_send_interval: SLA_SCAN_INTERVAL,
            link_key: Some(survey_key.clone()),
            public_url: PUBLIC_URL.into(),
            service_tokens: std::sync::Arc::new(services.issuer.service_tokens("servicedesk")),
            ..servicedesk::config::ServiceDeskConfig::new(
                services.config("servicedesk").await,
                services.url("customers"),
            )
        };
        adjust(&mut config);
        services
            .start("servicedesk", servicedesk::build(config))
            .await;
        TestApp {
            tenant: services.tenant,
            services,
            clock,
            mail_in,
            mail_out,
            survey_key,
        }
    }

    /// Another pod of the service desk on the same database, NATS and clock.
    pub async fn second_instance(&mut self) {
        let service = testkit::service_config(
            "servicedesk",
            self.services.db("servicedesk"),
            &self.services.nats,
            &self.services.issuer,
        );
        let config = servicedesk::config::ServiceDeskConfig {
            clock: self.clock.clone(),
            sla_scan_interval: SLA_SCAN_INTERVAL,
            ..servicedesk::config::ServiceDeskConfig::new(service, self.services.url("customers"))
        };
        self.services
            .start("servicedesk-2", servicedesk::build(config))
            .await;
    }

    pub fn client(&self, roles: &[Role], visibility: Visibility, teams: &[Uuid]) -> Client {
        self.client_in(self.tenant, Uuid::now_v7(), roles, visibility, teams)
    }

    pub fn admin(&self) -> Client {
        self.client(&[Role::Admin], Visibility::Tenant, &[])
    }

    /// A support agent who sees their groups' tickets and their own.
    pub fn agent(&self, groups: &[Uuid]) -> Client {
        self.client(&[Role::SupportAgent], Visibility::Team, groups)
    }

    /// An integration (a chat connector, say): the service role.
    pub fn integration(&self) -> Client {
        self.client(&[Role::Service], Visibility::Tenant, &[])
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

    pub fn client_in(
        &self,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        self.client_of("servicedesk", tenant, user, roles, visibility, teams)
    }

    /// An admin talking to the pod `instance` ("servicedesk-2").
    pub fn admin_of(&self, instance: &str) -> Client {
        self.client_of(
            instance,
            self.tenant,
            Uuid::now_v7(),
            &[Role::Admin],
            Visibility::Tenant,
            &[],
        )
    }

    fn client_of(
        &self,
        instance: &str,
        tenant: Uuid,
        user: Uuid,
        roles: &[Role],
        visibility: Visibility,
        teams: &[Uuid],
    ) -> Client {
        let bearer = self.services.bearer(tenant, user, roles, visibility, teams);
        let desk = self.services.channel(instance);
        Client {
            user,
            tickets: TicketServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            slas: SlaServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            routing: RoutingServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            knowledge: KnowledgeServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            search: SearchServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            channels: ChannelServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            satisfaction: SatisfactionServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            feedback: FeedbackServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            macros: MacroServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            jobs: TicketJobServiceClient::with_interceptor(desk.clone(), bearer.clone()),
            portal: PortalServiceClient::with_interceptor(desk, bearer.clone()),
            contacts: ContactServiceClient::with_interceptor(
                self.services.channel("customers"),
                bearer.clone(),
            ),
            accounts: AccountServiceClient::with_interceptor(
                self.services.channel("customers"),
                bearer.clone(),
            ),
            activities: ActivityServiceClient::with_interceptor(
                self.services.channel("customers"),
                bearer,
            ),
        }
    }

    /// Erases a contact in the customers service (as an admin).
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

    /// Waits until an event of `event_type` about `subject` is on `domain`'s stream.
    pub async fn event(&self, domain: &str, event_type: &str, subject: &str) -> Event {
        self.services.event(domain, event_type, subject).await
    }
}

pub async fn contact(client: &mut Client, last_name: &str) -> people::Contact {
    client
        .contacts
        .create_contact(people::CreateContactRequest {
            contact: Some(people::Contact {
                first_name: "Requester".into(),
                last_name: last_name.into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact")
}

pub async fn get(client: &mut Client, id: &str) -> Result<Ticket, tonic::Status> {
    client
        .tickets
        .get_ticket(GetTicketRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().ticket.expect("ticket"))
}

pub async fn create(client: &mut Client, ticket: Ticket) -> Result<Ticket, tonic::Status> {
    client
        .tickets
        .create_ticket(CreateTicketRequest {
            ticket: Some(ticket),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().ticket.expect("ticket"))
}

pub fn subject(subject: &str) -> Ticket {
    Ticket {
        subject: subject.into(),
        ..Default::default()
    }
}

pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

pub async fn update(
    client: &mut Client,
    ticket: Ticket,
    paths: &[&str],
) -> Result<Ticket, tonic::Status> {
    client
        .tickets
        .update_ticket(UpdateTicketRequest {
            ticket: Some(ticket),
            update_mask: mask(paths),
            expected_version: 0,
        })
        .await
        .map(|r| r.into_inner().ticket.expect("ticket"))
}

pub async fn status(
    client: &mut Client,
    id: &str,
    status: TicketStatus,
) -> Result<Ticket, tonic::Status> {
    update(
        client,
        Ticket {
            id: id.into(),
            status: status as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
}

pub async fn reply(
    client: &mut Client,
    ticket: &str,
    kind: MessageKind,
    body: &str,
    request_id: &str,
) -> Result<TicketMessage, tonic::Status> {
    client
        .tickets
        .add_message(AddMessageRequest {
            ticket_id: ticket.into(),
            message: Some(TicketMessage {
                kind: kind as i32,
                body: body.into(),
                ..Default::default()
            }),
            request_id: request_id.into(),
        })
        .await
        .map(|r| r.into_inner().message.expect("message"))
}
