//! Service desk benchmark, through its gRPC API on real PostgreSQL and
//! NATS. Prints its figures:
//!
//!     deploy/bench.sh servicedesk
//!
//! CreateTicket (row, number, history and event; one tenant, so every
//! create takes the tenant's number in turn), AddMessage (a public reply:
//! row, first-response stamp, event), GetTicket, and ListTickets (a page of
//! 50 open tickets of a group) from BENCH_CLIENTS clients, each against raw
//! PostgreSQL measured in the same run; routing decisions under contention
//! (every client moves its tickets between two least-loaded groups of 20
//! agents, so each request unassigns a ticket and routes it again); and the
//! SLA scanner beside BENCH_SLA_TICKETS (default 1,000,000) open tickets
//! with running clocks, of which 10,000 come due at once (each: warning and
//! breach events, clock and alarm written); and knowledge-base search
//! (two words, ranked, with snippets) over BENCH_ARTICLES (default
//! 100,000) published articles.
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per phase (default 10).

use std::sync::Arc;

use std::time::{Duration, Instant};

use crm_proto::crm::servicedesk::v1::knowledge_service_client::KnowledgeServiceClient;
use crm_proto::crm::servicedesk::v1::routing_service_client::RoutingServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::BearerToken;
use testkit::bench::{env_u64, load, peak_rss_mib, report, thousands, RawPostgres};
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
    let running = servicedesk::build(servicedesk::config::ServiceDeskConfig {
        sla_scan_interval: Duration::from_millis(100),
        ..servicedesk::config::ServiceDeskConfig::new(service, "http://127.0.0.1:9".into())
    })
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

    // Routing: two least-loaded groups of the same 20 agents.
    let mut routing = RoutingServiceClient::with_interceptor(channels[0].clone(), bearer.clone());
    let routed: Vec<String> = (0..2).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for group in &routed {
        routing
            .put_group_routing(PutGroupRoutingRequest {
                routing: Some(GroupRouting {
                    group_id: group.clone(),
                    mode: AssignmentMode::LeastLoaded as i32,
                    ..Default::default()
                }),
            })
            .await?;
    }
    for _ in 0..20 {
        let user = uuid::Uuid::now_v7().to_string();
        routing
            .put_agent(PutAgentRequest {
                agent: Some(Agent {
                    user_id: user.clone(),
                    group_ids: routed.clone(),
                    capacity: 1_000,
                    ..Default::default()
                }),
                expected_version: 0,
            })
            .await?;
        routing
            .set_availability(SetAvailabilityRequest {
                user_id: user,
                availability: Availability::Online as i32,
            })
            .await?;
    }
    let for_route: Vec<_> = (0..clients).map(client).collect();
    let ids = mine.clone();
    let routings = load(
        "UpdateTicket into a routed group",
        clients,
        seconds,
        move |worker, n| {
            let mut client = for_route[worker].clone();
            let (ids, routed) = (ids.clone(), routed.clone());
            async move {
                let own = &ids[worker];
                if own.is_empty() {
                    return false;
                }
                let request = UpdateTicketRequest {
                    ticket: Some(Ticket {
                        id: own[(n as usize) % own.len()].clone(),
                        group_id: routed[(n as usize / own.len()) % 2].clone(),
                        ..Default::default()
                    }),
                    update_mask: Some(prost_types::FieldMask {
                        paths: vec!["group_id".into(), "assignee_id".into()],
                    }),
                    expected_version: 0,
                };
                match client.update_ticket(request).await {
                    Ok(response) => response
                        .into_inner()
                        .ticket
                        .is_some_and(|t| !t.assignee_id.is_empty()),
                    Err(_) => false,
                }
            }
        },
    )
    .await;

    let scan = sla_scan(&db).await?;

    // Knowledge base: articles seeded in SQL, searched through the API.
    let articles = seed_articles(&db, tenant).await?;
    let for_search: Vec<_> = (0..clients)
        .map(|i| {
            KnowledgeServiceClient::with_interceptor(
                channels[i % channels.len()].clone(),
                bearer.clone(),
            )
        })
        .collect();
    let searches = load("SearchArticles", clients, seconds, move |worker, n| {
        let mut client = for_search[worker].clone();
        let query = format!(
            "{} {}",
            WORDS[(worker * 7 + n as usize) % WORDS.len()],
            WORDS[(n as usize * 3 + 1) % WORDS.len()]
        );
        async move {
            let request = SearchArticlesRequest {
                query,
                limit: 10,
                ..Default::default()
            };
            client.search_articles(request).await.is_ok()
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
    report(
        "gRPC UpdateTicket into a least-loaded group of 20 agents (unassign + route: agent row lock, load, history, events)",
        &routings.summary(),
        routings.per_second,
        Some(&raw.insert),
    );
    report(
        &format!(
            "gRPC SearchArticles, two words over {} published articles (ranked, snippets)",
            thousands(articles as f64)
        ),
        &format!("{}, p50 {:.1} ms", searches.summary(), searches.p50_ms),
        searches.per_second,
        Some(&raw.select),
    );
    println!(
        "| SLA scanner, {} due of {} open tickets with running clocks | {} alarms/s, {:.1} ms per pass of 100 (warning + breach events each); idle pass {:.2} ms | | |",
        thousands(scan.due as f64),
        thousands(scan.open as f64),
        thousands(scan.due as f64 / scan.elapsed.as_secs_f64()),
        scan.elapsed.as_secs_f64() * 1000.0 / (scan.due as f64 / 100.0),
        scan.idle_ms,
    );
    running.stop().await?;
    Ok(())
}

/// The vocabulary of the seeded articles.
const WORDS: [&str; 24] = [
    "printer", "invoice", "address", "password", "reset", "refund", "order", "delivery", "account",
    "login", "error", "update", "install", "network", "router", "billing", "export", "import",
    "report", "mobile", "email", "license", "backup", "restore",
];

/// Seeds `BENCH_ARTICLES` published English articles: 5-word titles drawn
/// from [`WORDS`] (a two-word query matches a few percent of them) and
/// 80-word bodies from 5,000 other words.
async fn seed_articles(db: &TestDatabase, tenant: uuid::Uuid) -> anyhow::Result<i64> {
    let count = env_u64("BENCH_ARTICLES", 100_000) as i64;
    let pool = db.admin_pool().await;
    let seeded = Instant::now();
    sqlx::query(
        "INSERT INTO articles (tenant_id, id, title, body, language, audience, status, published_at) \
         SELECT $1, gen_random_uuid(), \
                (SELECT string_agg(($2::text[])[1 + floor(random() * 24)::int], ' ') FROM generate_series(1, 5 + (n % 2))), \
                (SELECT string_agg('term' || floor(random() * 5000)::int, ' ') FROM generate_series(1, 80 + (n % 2))), \
                'en', 2, 2, now() \
         FROM generate_series(1, $3) AS n",
    )
    .bind(tenant)
    .bind(WORDS.iter().map(|w| w.to_string()).collect::<Vec<_>>())
    .bind(count)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE articles").execute(&pool).await?;
    println!(
        "seeded {} published articles in {:.0} s",
        thousands(count as f64),
        seeded.elapsed().as_secs_f64()
    );
    Ok(count)
}

struct SlaScan {
    open: i64,
    due: i64,
    elapsed: Duration,
    idle_ms: f64,
}

/// Seeds `BENCH_SLA_TICKETS` open tickets (another tenant) with running
/// resolution clocks whose alarms lie a month ahead, times the scanner's
/// idle probe, then makes 10,000 of them due at once and times the
/// running service's scanner until none is left.
async fn sla_scan(db: &TestDatabase) -> anyhow::Result<SlaScan> {
    let open = env_u64("BENCH_SLA_TICKETS", 1_000_000) as i64;
    let due = 10_000.min(open);
    let pool = db.admin_pool().await;
    let tenant = uuid::Uuid::now_v7();
    let seeded = Instant::now();
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, number, subject, type, priority, status, channel) \
         SELECT $1, gen_random_uuid(), n, 'Seeded ' || n, 1, 2, 2, 6 FROM generate_series(1, $2) AS n",
    )
    .bind(tenant)
    .bind(open)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO ticket_slas (tenant_id, ticket_id, metric, policy_id, target, warn_after, elapsed, running_since) \
         SELECT $1, id, 3, gen_random_uuid(), 3600, 2880, 0, now() - interval '2 hours' FROM tickets WHERE tenant_id = $1",
    )
    .bind(tenant)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO sla_alarms (tenant_id, ticket_id, metric, fire_at) \
         SELECT $1, id, 3, now() + interval '30 days' FROM tickets WHERE tenant_id = $1",
    )
    .bind(tenant)
    .execute(&pool)
    .await?;
    for table in ["tickets", "ticket_slas", "sla_alarms"] {
        sqlx::query(&format!("ANALYZE {table}"))
            .execute(&pool)
            .await?;
    }
    println!(
        "seeded {} open tickets with clocks and alarms in {:.0} s",
        thousands(open as f64),
        seeded.elapsed().as_secs_f64()
    );
    // The scanner's probe when nothing is due, as it runs it.
    let probes = 200;
    let started = Instant::now();
    for _ in 0..probes {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "SELECT tenant_id, ticket_id FROM sla_alarms WHERE fire_at <= now() \
             ORDER BY fire_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
    }
    let idle_ms = started.elapsed().as_secs_f64() * 1000.0 / probes as f64;
    sqlx::query(
        "UPDATE sla_alarms SET fire_at = now() - interval '1 minute' WHERE (tenant_id, ticket_id) IN \
         (SELECT tenant_id, id FROM tickets WHERE tenant_id = $1 ORDER BY number LIMIT $2)",
    )
    .bind(tenant)
    .bind(due)
    .execute(&pool)
    .await?;
    let started = Instant::now();
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sla_alarms WHERE fire_at <= now()")
                .fetch_one(&pool)
                .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the scanner left {left} alarms due"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(SlaScan {
        open,
        due,
        elapsed: started.elapsed(),
        idle_ms,
    })
}
