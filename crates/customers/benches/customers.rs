//! Customers service benchmark, through its gRPC API on real PostgreSQL and
//! NATS. Prints its figures:
//!
//!     deploy/bench.sh customers
//!
//! Environment: BENCH_CONTACTS (rows imported first, default 1000000),
//! BENCH_CLIENTS (concurrent clients, default 32), BENCH_SECONDS (per
//! phase, default 10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::data_service_client::DataServiceClient;
use crm_proto::crm::customers::v1::search_service_client::SearchServiceClient;
use crm_proto::crm::customers::v1::*;
use kit::auth::BearerToken;
use testkit::bench::{
    bench_person, contacts_csv, env_u64, import_contacts, last_name, load, report, thousands,
    RawPostgres, FIRST,
};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use tokio::sync::Mutex;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Authed = InterceptedService<Channel, BearerToken>;

/// Lets the outbox relay publish the backlog of the previous phase, so it
/// does not compete with the next one for the machine's two cores. Returns
/// how long the backlog took to publish.
async fn drain_outbox(db: &TestDatabase) -> Duration {
    let started = Instant::now();
    let pool = db.admin_pool().await;
    while started.elapsed() < Duration::from_secs(600) {
        let (pending,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap_or((0,));
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();
    let _ = sqlx::query("VACUUM ANALYZE contacts").execute(&pool).await;
    let _ = sqlx::query("VACUUM ANALYZE search_index")
        .execute(&pool)
        .await;
    pool.close().await;
    drained
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let contacts = env_u64("BENCH_CONTACTS", 1_000_000);
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let (db, nats, issuer) = (
        TestDatabase::create().await,
        TestNats::new(),
        TokenIssuer::new(),
    );
    let mut config = service_config("customers", &db, &nats, &issuer);
    config.database.max_connections = 40;
    let running = customers::build(config).await?;
    let bearer = BearerToken::new(&issuer.admin_token(uuid::Uuid::now_v7()))?;
    let channels = testkit::bench::channels(running.grpc_addr, 4).await?;
    let contacts_client = |i: usize| {
        ContactServiceClient::with_interceptor(channels[i % channels.len()].clone(), bearer.clone())
    };

    // 1. CSV import of BENCH_CONTACTS rows (this also loads the data set).
    let csv = contacts_csv(contacts);
    let mut data: DataServiceClient<Authed> =
        DataServiceClient::with_interceptor(channels[0].clone(), bearer.clone());
    let copy = RawPostgres::copy(&csv).await;
    let (last, elapsed) = import_contacts(&mut data, csv, DedupPolicy::Create).await?;
    let rate = last.rows_read as f64 / elapsed;
    println!(
        "csv import      {} rows in {elapsed:.1}s = {rate:.0} rows/s ({} created, {} failed)",
        last.rows_read, last.created, last.failed
    );
    report(
        &format!(
            "CSV import of {} contacts (validated, events)",
            thousands(contacts as f64)
        ),
        &format!("{} rows/s ({elapsed:.0} s)", thousands(rate)),
        rate,
        Some(&copy),
    );
    let drained = drain_outbox(&db).await;
    println!(
        "events          every contact.created published {:.1}s after the import finished",
        drained.as_secs_f64()
    );
    report(
        "their contact.created events on NATS after the import",
        &format!("{:.0} s more", drained.as_secs_f64()),
        0.0,
        None,
    );

    // 1b. A deduplicating import into the tenant just loaded: every row is
    // looked up by e-mail; half of them are already there and skipped.
    let mut csv = String::from("first_name,last_name,email\n");
    for i in 0..2_000u64 {
        let (f, l, stored) = bench_person(i);
        let email = if i % 2 == 0 && i < contacts {
            stored
        } else {
            format!("fresh{i}@bench.example")
        };
        csv.push_str(&format!("{f},{l},{email}\n"));
    }
    let (last, elapsed) = import_contacts(&mut data, csv, DedupPolicy::Skip).await?;
    let rate = last.rows_read as f64 / elapsed;
    println!(
        "dedup import    {} rows into {contacts} contacts in {elapsed:.1}s = {rate:.0} rows/s ({} created, {} skipped)",
        last.rows_read, last.created, last.skipped
    );
    report(
        &format!(
            "deduplicating import of 2,000 rows into {} contacts",
            thousands(contacts as f64)
        ),
        &format!("{} rows/s", thousands(rate)),
        rate,
        Some(&copy),
    );
    drain_outbox(&db).await;

    // 2. CreateContact from concurrent clients.
    let created_ids = Arc::new(Mutex::new(Vec::new()));
    let ids = created_ids.clone();
    let make = contacts_client;
    let clients_for_create: Vec<_> = (0..clients).map(&make).collect();
    let raw = RawPostgres::measure(clients, seconds).await;
    let created = load("CreateContact", clients, seconds, move |worker, n| {
        let mut client = clients_for_create[worker].clone();
        let ids = ids.clone();
        async move {
            let contact = Contact {
                first_name: FIRST[n as usize % 12].into(),
                last_name: format!("Load{worker}x{n}"),
                emails: vec![Email {
                    address: format!("load{worker}x{n}@bench.example"),
                    ..Default::default()
                }],
                ..Default::default()
            };
            match client
                .create_contact(CreateContactRequest {
                    contact: Some(contact),
                    request_id: String::new(),
                })
                .await
            {
                Ok(response) => {
                    if let Some(c) = response.into_inner().contact {
                        ids.lock().await.push(c.id);
                    }
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;

    drain_outbox(&db).await;

    // 3. GetContact by id.
    let ids = Arc::new(created_ids.lock().await.clone());
    let clients_for_get: Vec<_> = (0..clients).map(&make).collect();
    let fetched = load("GetContact", clients, seconds, move |worker, n| {
        let mut client = clients_for_get[worker].clone();
        let id = ids[(worker * 7919 + n as usize * 104729) % ids.len()].clone();
        async move { client.get_contact(GetContactRequest { id }).await.is_ok() }
    })
    .await;

    // 4. Search (fuzzy, with a typo) over the whole data set.
    let searchers: Vec<SearchServiceClient<Authed>> = (0..clients)
        .map(|i| {
            SearchServiceClient::with_interceptor(
                channels[i % channels.len()].clone(),
                bearer.clone(),
            )
        })
        .collect();
    let searched = load("Search", clients, seconds, move |worker, n| {
        let mut client = searchers[worker].clone();
        // A last name with one letter dropped: a typo the search must forgive.
        let mut query = last_name((n * 31 + worker as u64) * 7919);
        query.remove(query.len() / 2);
        async move {
            client
                .search(SearchRequest { query, limit: 20 })
                .await
                .is_ok()
        }
    })
    .await;
    // 5. A page of 50 with a filter over the whole data set: by last name
    // (an index on lower(last_name)) and by e-mail (through contact points).
    for (field, label) in [("last_name", "last name"), ("email", "e-mail")] {
        let listers: Vec<ContactServiceClient<Authed>> = (0..clients).map(&make).collect();
        let listed = load(
            &format!("ListContacts {field}"),
            clients,
            seconds,
            move |worker, n| {
                let mut client = listers[worker].clone();
                let i = (n * 31 + worker as u64) % contacts.max(1);
                let (_, last, email) = bench_person(i);
                let value = if field == "email" { email } else { last };
                let filter = Filter {
                    node: Some(filter::Node::Condition(Condition {
                        field: field.into(),
                        op: Operator::Eq as i32,
                        value: Some(prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(value)),
                        }),
                    })),
                };
                async move {
                    client
                        .list_contacts(ListContactsRequest {
                            filter: Some(filter),
                            page: Some(crm_proto::crm::common::v1::PageRequest {
                                page_size: 50,
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .await
                        .is_ok()
                }
            },
        )
        .await;
        report(
            &format!(
                "gRPC ListContacts, 50 by {label} over {} contacts",
                thousands(contacts as f64)
            ),
            &listed.summary(),
            listed.per_second,
            None,
        );
    }

    report(
        "gRPC CreateContact (row + event)",
        &created.summary(),
        created.per_second,
        Some(&raw.insert),
    );
    report(
        "gRPC GetContact",
        &fetched.summary(),
        fetched.per_second,
        Some(&raw.select),
    );
    report(
        &format!(
            "gRPC Search with a typo over {} contacts",
            thousands(contacts as f64)
        ),
        &searched.summary(),
        searched.per_second,
        None,
    );

    running.stop().await?;
    Ok(())
}
