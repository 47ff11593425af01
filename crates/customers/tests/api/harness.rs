use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::field_service_client::FieldServiceClient;
use crm_proto::crm::customers::v1::search_service_client::SearchServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::customers::v1::*;
use kit::auth::{Role, Visibility};
use testkit::{Services, TestDatabase};
use tonic::transport::Channel;
use uuid::Uuid;

use testkit::grpc::Authed;

/// Typed clients that all carry one caller's token.
pub struct Client {
    pub user: Uuid,
    pub contacts: ContactServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub activities: ActivityServiceClient<Authed>,
    pub fields: FieldServiceClient<Authed>,
    pub segments: SegmentServiceClient<Authed>,
    pub search: SearchServiceClient<Authed>,
    pub data: DataServiceClient<Authed>,
}

pub struct TestApp {
    pub services: Services,
    pub tenant: Uuid,
    pub channel: Channel,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(customers::ImportLimits::default()).await
    }

    pub async fn spawn_with(import_limits: customers::ImportLimits) -> Self {
        let mut services = Services::new();
        let config = services.config("customers").await;
        let build = customers::build_with(config, import_limits);
        let channel = services.start("customers", build).await;
        TestApp {
            tenant: services.tenant,
            services,
            channel,
        }
    }

    /// The service's database.
    pub fn db(&self) -> &TestDatabase {
        self.services.db("customers")
    }

    /// A client for a user of this test's tenant.
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
        let channel = self.channel.clone();
        Client {
            user,
            contacts: ContactServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            accounts: AccountServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            activities: ActivityServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            fields: FieldServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            segments: SegmentServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            search: SearchServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            data: DataServiceClient::with_interceptor(channel, bearer),
        }
    }

    /// Waits until an event of `event_type` about `subject` (aggregate id)
    /// is on the stream, and returns it.
    pub async fn event(&self, event_type: &str, subject: &str) -> Event {
        self.services.event("customers", event_type, subject).await
    }
}

pub fn contact(first: &str, last: &str, email: &str) -> Contact {
    Contact {
        first_name: first.into(),
        last_name: last.into(),
        emails: if email.is_empty() {
            vec![]
        } else {
            vec![Email {
                address: email.into(),
                ..Default::default()
            }]
        },
        ..Default::default()
    }
}

pub async fn create_contact(client: &mut Client, contact: Contact) -> Contact {
    client
        .contacts
        .create_contact(CreateContactRequest {
            contact: Some(contact),
            request_id: String::new(),
        })
        .await
        .expect("create contact")
        .into_inner()
        .contact
        .unwrap()
}

pub async fn create_account(client: &mut Client, name: &str, domain: &str) -> Account {
    testkit::grpc::create_account(&mut client.accounts, name, domain).await
}

/// The hits of a search as `client`'s caller.
pub async fn search(client: &mut Client, query: &str, limit: i32) -> Vec<SearchHit> {
    client
        .search
        .search(SearchRequest {
            query: query.into(),
            limit,
        })
        .await
        .expect("search")
        .into_inner()
        .hits
}

pub use testkit::grpc::violated_fields;

pub fn string_value(s: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s.into())),
    }
}

pub fn condition(field: &str, op: Operator, value: prost_types::Value) -> Filter {
    Filter {
        node: Some(filter::Node::Condition(Condition {
            field: field.into(),
            op: op as i32,
            value: Some(value),
        })),
    }
}
