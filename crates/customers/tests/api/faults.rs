//! PostgreSQL killed under a running service: calls answer UNAVAILABLE
//! within the deadline instead of hanging, and once the database is back
//! the service serves again and the outbox relay publishes what was
//! committed, without a restart. Readiness (gRPC health) follows the
//! database down and up again.

use std::time::{Duration, Instant};

use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::*;
use kit::auth::{Role, Visibility};
use testkit::{eventually, PgServer, Services};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use uuid::Uuid;

use crate::harness::contact;

#[tokio::test]
async fn a_postgres_crash_is_unavailable_then_the_service_recovers_by_itself() {
    let mut postgres = PgServer::start().await;
    let mut services = Services::new();
    let config = services.config_on("customers", &postgres.url()).await;
    let channel = services.start("customers", customers::build(config)).await;
    let channel_for_health = channel.clone();
    let bearer = services.bearer(
        services.tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    let mut contacts = ContactServiceClient::with_interceptor(channel, bearer);
    let create = |last: &str| CreateContactRequest {
        contact: Some(contact("Crash", last, "")),
        request_id: String::new(),
    };
    let before = contacts
        .create_contact(create("Before"))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    services
        .event("customers", "crm.customers.contact.created.v1", &before.id)
        .await;

    let health = HealthClient::new(channel_for_health.clone());
    let status = |mut health: HealthClient<tonic::transport::Channel>| async move {
        health
            .check(HealthCheckRequest {
                service: "crm.customers.v1.ContactService".into(),
            })
            .await
            .ok()
            .map(|r| r.into_inner().status)
    };
    assert_eq!(
        status(health.clone()).await,
        Some(ServingStatus::Serving as i32)
    );

    postgres.kill();
    let started = Instant::now();
    let down = contacts.create_contact(create("During")).await.unwrap_err();
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "answered within the pool's deadline, not hung"
    );
    let read = contacts
        .get_contact(GetContactRequest {
            id: before.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(read.code(), tonic::Code::Unavailable);
    // Readiness (the gRPC health status Kubernetes probes) follows.
    eventually("the service reports NOT_SERVING", Duration::from_secs(30), || {
        let health = health.clone();
        async move { (status(health).await == Some(ServingStatus::NotServing as i32)).then_some(()) }
    })
    .await;

    postgres.restart().await;
    let after = eventually("writes work again", Duration::from_secs(30), || {
        let mut contacts = contacts.clone();
        async move {
            contacts
                .create_contact(create("After"))
                .await
                .ok()?
                .into_inner()
                .contact
        }
    })
    .await;
    services
        .event("customers", "crm.customers.contact.created.v1", &after.id)
        .await;
    eventually("the service reports SERVING again", Duration::from_secs(30), || {
        let health = health.clone();
        async move { (status(health).await == Some(ServingStatus::Serving as i32)).then_some(()) }
    })
    .await;
    let fetched = contacts
        .get_contact(GetContactRequest {
            id: before.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        fetched.into_inner().contact.unwrap().last_name,
        "Before",
        "committed data survived the crash"
    );
    services.stop().await;
}
