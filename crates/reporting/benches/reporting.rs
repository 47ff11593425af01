//! Reporting benchmark on real PostgreSQL and NATS. Prints its figures:
//!
//!     deploy/bench.sh reporting
//!
//! - Replay: BENCH_EVENTS (default 200,000; the figure is
//!   10,000,000) opportunity events published to the sales stream before
//!   reporting starts, then applied by its consumer from the stream's
//!   beginning: events/s, against single-row INSERT + COMMIT in raw
//!   PostgreSQL measured in the same run (each event is a row written, its
//!   rollups and an inbox row; up to 100 events per transaction).
//! - Freshness: 1,000 events/s for BENCH_SECONDS while the staleness of the
//!   tenant's `as_of` (wall clock minus the newest applied event's commit
//!   time) is sampled every 10 ms: p50 / p99.
//! - Dashboards: the sales and service dashboards from 1 client, then
//!   BENCH_CLIENTS (default 8), over BENCH_DEALS deals and BENCH_TICKETS
//!   tickets (default 1,000,000 each, written straight into the read
//!   models, their rollups kept by the triggers) in one tenant: req/s and
//!   latency, against `pgbench -S`.

use std::time::{Duration, Instant};

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::reporting::v1::dashboard_service_client::DashboardServiceClient;
use crm_proto::crm::reporting::v1::{GetSalesDashboardRequest, GetServiceDashboardRequest};
use crm_proto::crm::sales::v1 as sales;
use kit::auth::BearerToken;
use prost::Message as _;
use testkit::bench::{env_u64, load, report, thousands, RawPostgres, Reference};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use uuid::Uuid;

/// An opportunity event as sales publishes it (envelope included).
fn opportunity_event(tenant: Uuid, i: u64) -> (String, Vec<u8>) {
    let id = Uuid::now_v7();
    let payload = sales::OpportunityCreated {
        opportunity: Some(sales::Opportunity {
            id: id.to_string(),
            name: format!("Deal {i}"),
            amount: Some(Money {
                amount: format!("{}.00", 1000 + i % 9000),
                currency: "EUR".into(),
            }),
            status: sales::OpportunityStatus::Open as i32,
            probability: 20,
            ..Default::default()
        }),
    };
    let event = crm_proto::crm::common::v1::Event {
        id: Uuid::now_v7().to_string(),
        r#type: "crm.sales.opportunity.created.v1".into(),
        source: "sales".into(),
        tenant_id: tenant.to_string(),
        subject: id.to_string(),
        aggregate_version: 1,
        occurred_at: Some(kit::time::to_timestamp(chrono::Utc::now())),
        actor: "bench".into(),
        trace_parent: String::new(),
        data: payload.encode_to_vec(),
        data_schema: "crm.sales.v1.OpportunityCreated".into(),
    };
    (event.id.clone(), event.encode_to_vec())
}

/// Publishes `count` events to the sales stream, many in flight at once.
async fn publish(nats: &TestNats, tenant: Uuid, count: u64) -> anyhow::Result<()> {
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let naming = nats.naming();
    kit::streams::ensure_domain_stream(&jetstream, &naming, &nats.config(), "sales").await?;
    let subject = naming.subject("crm.sales.opportunity.created");
    let mut pending = Vec::new();
    for i in 0..count {
        let (id, bytes) = opportunity_event(tenant, i);
        let ack = jetstream
            .send_publish(
                subject.clone(),
                async_nats::jetstream::message::PublishMessage::build()
                    .payload(bytes.into())
                    .message_id(id),
            )
            .await?;
        pending.push(ack);
        if pending.len() >= 2_000 {
            for ack in pending.drain(..) {
                ack.await?;
            }
        }
    }
    for ack in pending {
        ack.await?;
    }
    Ok(())
}

async fn count_deals(pool: &sqlx::PgPool) -> i64 {
    // The bench reads as the owner, outside row-level security.
    sqlx::query_scalar("SELECT count(*) FROM deals")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_u64("BENCH_CLIENTS", 8) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let events = env_u64("BENCH_EVENTS", 200_000);
    let deals = env_u64("BENCH_DEALS", 1_000_000);
    let tickets = env_u64("BENCH_TICKETS", 1_000_000);
    let (db, nats, issuer) = (
        TestDatabase::create().await,
        TestNats::new(),
        TokenIssuer::new(),
    );
    let raw = RawPostgres::measure(32, seconds).await;
    let tenant = Uuid::now_v7();

    // Replay: the events wait on the stream; reporting starts and applies
    // them from the beginning.
    let published = Instant::now();
    publish(&nats, tenant, events).await?;
    println!(
        "published {} events in {:.1} s",
        thousands(events as f64),
        published.elapsed().as_secs_f64()
    );
    let service = service_config("reporting", &db, &nats, &issuer);
    let started = Instant::now();
    let running = reporting::build(reporting::config::ReportingConfig::new(service)).await?;
    let owner = db.admin_pool().await;
    loop {
        if count_deals(&owner).await >= events as i64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("the replay did not finish within an hour");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let replay = events as f64 / started.elapsed().as_secs_f64();
    println!(
        "replayed {} events at {} events/s",
        thousands(events as f64),
        thousands(replay)
    );
    report(
        &format!(
            "reporting: replay of {} sales events (projection throughput)",
            thousands(events as f64)
        ),
        &format!("{} events/s", thousands(replay)),
        replay,
        Some(&raw.insert),
    );

    // Freshness under 1,000 events/s.
    let publisher = {
        let nats = nats.config();
        let prefix = nats.prefix.clone();
        let url = nats.url.clone();
        tokio::spawn(async move {
            let client = async_nats::connect(url).await.expect("NATS");
            let jetstream = async_nats::jetstream::new(client);
            let naming = kit::events::Naming::new(prefix);
            let subject = naming.subject("crm.sales.opportunity.created");
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            let mut i = 0;
            while Instant::now() < deadline {
                tick.tick().await;
                let (id, bytes) = opportunity_event(tenant, i);
                i += 1;
                let _ = jetstream
                    .send_publish(
                        subject.clone(),
                        async_nats::jetstream::message::PublishMessage::build()
                            .payload(bytes.into())
                            .message_id(id),
                    )
                    .await;
            }
            i
        })
    };
    let mut staleness = Vec::new();
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(seconds) {
        let lag: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM clock_timestamp() - as_of)::float8 FROM freshness WHERE tenant_id = $1 AND domain = 'sales'",
        )
        .bind(tenant)
        .fetch_optional(&owner)
        .await?;
        if let Some(lag) = lag {
            staleness.push(lag.max(0.0));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = publisher.await.unwrap_or(0);
    staleness.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        staleness[((staleness.len() as f64 * p) as usize).min(staleness.len().saturating_sub(1))]
    };
    if !staleness.is_empty() {
        println!(
            "freshness at {:.0} events/s: p50 {:.0} ms, p99 {:.0} ms ({} samples)",
            sent as f64 / seconds as f64,
            pick(0.5) * 1e3,
            pick(0.99) * 1e3,
            staleness.len()
        );
        report(
            "reporting: freshness at 1,000 events/s (commit to visible)",
            &format!(
                "p50 {:.0} ms, p99 {:.0} ms",
                pick(0.5) * 1e3,
                pick(0.99) * 1e3
            ),
            0.0,
            None,
        );
    }

    // Dashboards over large read models.
    let seeding = Instant::now();
    let pipeline = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deals (tenant_id, id, pipeline_id, stage_id, owner_id, team_id, status, amount, currency, probability, close_date, created_at, closed_at) \
         SELECT $1, gen_random_uuid(), $2, $3, ('00000000-0000-7000-8000-' || lpad((i % 50)::text, 12, '0'))::uuid, NULL, \
                1 + (i % 3), 100 + (i % 10000), 'EUR', 30, (now() + (i % 90) * interval '1 day')::date, \
                now() - (i % 365) * interval '1 day', CASE WHEN i % 3 > 0 THEN now() - (i % 300) * interval '1 day' END \
         FROM generate_series(1, $4) AS i",
    )
    .bind(tenant)
    .bind(pipeline)
    .bind(Uuid::now_v7())
    .bind(deals as i64)
    .execute(&owner)
    .await?;
    sqlx::query(
        "INSERT INTO tickets (tenant_id, id, number, type, channel, priority, status, owner_id, created_at, first_response_at, solved_at, csat_score) \
         SELECT $1, gen_random_uuid(), i, 1 + (i % 5), 1 + (i % 6), 2, CASE WHEN i % 4 = 0 THEN 2 ELSE 6 END, \
                ('00000000-0000-7000-8000-' || lpad((i % 50)::text, 12, '0'))::uuid, now() - (i % 365) * interval '1 day', \
                now() - (i % 365) * interval '1 day' + interval '2 hours', \
                CASE WHEN i % 4 = 0 THEN NULL ELSE now() - (i % 365) * interval '1 day' + interval '1 day' END, \
                CASE WHEN i % 7 = 0 THEN 1 + (i % 5) END \
         FROM generate_series(1, $2) AS i",
    )
    .bind(tenant)
    .bind(tickets as i64)
    .execute(&owner)
    .await?;
    sqlx::query("ANALYZE deals; ANALYZE tickets")
        .execute(&owner)
        .await
        .ok();
    println!(
        "seeded {} deals and {} tickets in {:.0} s",
        thousands(deals as f64),
        thousands(tickets as f64),
        seeding.elapsed().as_secs_f64()
    );
    let bearer = BearerToken::new(&issuer.admin_token(tenant))?;
    let channels = testkit::bench::channels(running.grpc_addr, 4).await?;
    let dashboards: Vec<_> = (0..clients)
        .map(|i| {
            DashboardServiceClient::with_interceptor(
                channels[i % channels.len()].clone(),
                bearer.clone(),
            )
        })
        .collect();
    // One person loading a dashboard, then `clients` at once.
    let select: &Reference = &raw.select;
    for at_once in [1, clients] {
        let for_sales = dashboards.clone();
        let sales_dashboard = load("GetSalesDashboard", at_once, seconds, move |worker, _| {
            let mut client = for_sales[worker].clone();
            async move {
                client
                    .get_sales_dashboard(GetSalesDashboardRequest {
                        currency: "EUR".into(),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
            }
        })
        .await;
        let for_service = dashboards.clone();
        let service_dashboard = load("GetServiceDashboard", at_once, seconds, move |worker, _| {
            let mut client = for_service[worker].clone();
            async move {
                client
                    .get_service_dashboard(GetServiceDashboardRequest::default())
                    .await
                    .is_ok()
            }
        })
        .await;
        for (what, rows, measured) in [
            (
                "sales dashboard",
                format!("{} deals", thousands(deals as f64)),
                &sales_dashboard,
            ),
            (
                "service dashboard",
                format!("{} tickets", thousands(tickets as f64)),
                &service_dashboard,
            ),
        ] {
            report(
                &format!("reporting: {what} over {rows}, {at_once} client(s)"),
                &format!(
                    "{}/s, p50 {:.0} ms, p95 {:.0} ms",
                    thousands(measured.per_second),
                    measured.p50_ms,
                    measured.p95_ms
                ),
                measured.per_second,
                Some(select),
            );
        }
    }
    running.stop().await?;
    Ok(())
}
