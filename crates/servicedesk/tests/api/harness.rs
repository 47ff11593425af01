use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::{self as people};
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use testkit::grpc::Authed;
use testkit::Services;
use uuid::Uuid;

pub use testkit::grpc::violated_fields;

pub struct Client {
    pub user: Uuid,
    pub tickets: TicketServiceClient<Authed>,
    pub contacts: ContactServiceClient<Authed>,
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
        let config = servicedesk::config::ServiceDeskConfig {
            service: services.config("servicedesk").await,
            customers_url: services.url("customers"),
        };
        services
            .start("servicedesk", servicedesk::build(config))
            .await;
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

    /// A support agent who sees their groups' tickets and their own.
    pub fn agent(&self, groups: &[Uuid]) -> Client {
        self.client(&[Role::SupportAgent], Visibility::Team, groups)
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
        let bearer = self.services.bearer(tenant, user, roles, visibility, teams);
        Client {
            user,
            tickets: TicketServiceClient::with_interceptor(
                self.services.channel("servicedesk"),
                bearer.clone(),
            ),
            contacts: ContactServiceClient::with_interceptor(
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
