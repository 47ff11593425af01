//! Service desk benchmark, through its gRPC API on real PostgreSQL and
//! NATS. Prints its figures:
//!
//!     deploy/bench.sh servicedesk
//!
//! CreateTicket (row, number, history and event; one tenant, so every
//! create takes the tenant's number in turn), AddMessage (a public reply:
//! row, first-response stamp, event), GetTicket, and ListTickets (a page of
//! 50 open tickets of a group) from BENCH_CLIENTS clients, each against raw
//! PostgreSQL measured in the same run.
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per phase (default 10).

use std::sync::Arc;

use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::BearerToken;
use testkit::bench::{env_u64, load, peak_rss_mib, report, RawPostgres};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let (db, nats, issuer) = (
        TestDatabase::create().await,
        TestNats::new(),
        TokenIssuer::new(),
    );
    let mut service = service_config("servicedesk", &db, &nats, &issuer);
    service.database.max_connections = 40;
    let running = servicedesk::build(servicedesk::config::ServiceDeskConfig::new(
        service,
        "http://127.0.0.1:9".into(),
    ))
    .await?;
    let tenant = uuid::Uuid::now_v7();
    let bearer = BearerToken::new(&issuer.admin_token(tenant))?;
    let channels = testkit::bench::channels(running.grpc_addr, 4).await?;
    let client = |i: usize| {
        TicketServiceClient::with_interceptor(channels[i % channels.len()].clone(), bearer.clone())
    };
    let groups: Vec<String> = (0..8).map(|_| uuid::Uuid::now_v7().to_string()).collect();

    // Raw PostgreSQL on the same machine in the same run: the yardstick.
    let raw = RawPostgres::measure(clients, seconds).await;

    let created = Arc::new(Mutex::new(vec![Vec::<String>::new(); clients]));
    let for_create: Vec<_> = (0..clients).map(client).collect();
    let (sink, groups_for_create) = (created.clone(), groups.clone());
    let creates = load("CreateTicket", clients, seconds, move |worker, n| {
        let mut client = for_create[worker].clone();
        let sink = sink.clone();
        let group = groups_for_create[worker % groups_for_create.len()].clone();
        async move {
            let request = CreateTicketRequest {
                ticket: Some(Ticket {
                    subject: format!("Printer {worker}-{n} is on fire"),
                    description: "It started this morning.".into(),
                    group_id: group,
                    tags: vec!["hardware".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            match client.create_ticket(request).await {
                Ok(response) => {
                    if let Some(t) = response.into_inner().ticket {
                        sink.lock().await[worker].push(t.id);
                    }
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;

    let mine = Arc::new(created.lock().await.clone());
    let for_reply: Vec<_> = (0..clients).map(client).collect();
    let ids = mine.clone();
    let replies = load("AddMessage", clients, seconds, move |worker, n| {
        let mut client = for_reply[worker].clone();
        let ids = ids.clone();
        async move {
            let own = &ids[worker];
            if own.is_empty() {
                return false;
            }
            let request = AddMessageRequest {
                ticket_id: own[(n as usize) % own.len()].clone(),
                message: Some(TicketMessage {
                    kind: MessageKind::PublicReply as i32,
                    body: format!("Reply {n}: a technician is on the way."),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            client.add_message(request).await.is_ok()
        }
    })
    .await;

    let for_get: Vec<_> = (0..clients).map(client).collect();
    let ids = mine.clone();
    let gets = load("GetTicket", clients, seconds, move |worker, n| {
        let mut client = for_get[worker].clone();
        let ids = ids.clone();
        async move {
            let own = &ids[worker];
            if own.is_empty() {
                return false;
            }
            let id = own[(n as usize) % own.len()].clone();
            client.get_ticket(GetTicketRequest { id }).await.is_ok()
        }
    })
    .await;

    let for_list: Vec<_> = (0..clients).map(client).collect();
    let lists = load("ListTickets (50)", clients, seconds, move |worker, n| {
        let mut client = for_list[worker].clone();
        let group = groups[(worker + n as usize) % groups.len()].clone();
        async move {
            let request = ListTicketsRequest {
                group_id: group,
                open_only: true,
                page: Some(crm_proto::crm::common::v1::PageRequest {
                    page_size: 50,
                    page_token: String::new(),
                }),
                ..Default::default()
            };
            client.list_tickets(request).await.is_ok()
        }
    })
    .await;

    let total: usize = mine.iter().map(Vec::len).sum();
    println!(
        "tickets created: {total}; peak RSS of the process {:.0} MiB",
        peak_rss_mib()
    );
    report(
        "gRPC CreateTicket (row + number + history + event, one tenant)",
        &creates.summary(),
        creates.per_second,
        Some(&raw.insert),
    );
    report(
        "gRPC AddMessage (public reply + event)",
        &replies.summary(),
        replies.per_second,
        Some(&raw.insert),
    );
    report(
        "gRPC GetTicket",
        &gets.summary(),
        gets.per_second,
        Some(&raw.select),
    );
    report(
        &format!("gRPC ListTickets, 50 open of a group ({total} tickets)"),
        &lists.summary(),
        lists.per_second,
        Some(&raw.select),
    );
    running.stop().await?;
    Ok(())
}
