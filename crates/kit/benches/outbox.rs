//! Outbox relay throughput and publish-to-consume latency, against the real
//! PostgreSQL and NATS the test suite uses. Prints its figures.
//!
//!     deploy/bench.sh outbox        (or: cargo bench -p kit --bench outbox)
//!
//! BENCH_EVENTS sets the throughput sample (default 20000).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::events::{DomainEvent, Event};
use kit::inbox::{ConsumerSpec, EventHandler, InboxConsumer};
use kit::outbox::{Outbox, OutboxRelay, RelaySettings};
use testkit::{TestDatabase, TestNats};
use tokio::sync::mpsc;
use uuid::Uuid;

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    body: String,
}

impl DomainEvent for Ping {
    const TYPE: &'static str = "crm.kittest.ping.sent.v1";
    const SCHEMA: &'static str = "kittest.Ping";
}

/// Reports how long after its commit each event was handled.
struct LatencyProbe(mpsc::UnboundedSender<Duration>);

impl EventHandler for LatencyProbe {
    async fn handle(&self, _tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let occurred = event.occurred_at.unwrap_or_default();
        let occurred = chrono::DateTime::from_timestamp(occurred.seconds, occurred.nanos as u32)
            .unwrap_or_default();
        let _ = self
            .0
            .send((chrono::Utc::now() - occurred).to_std().unwrap_or_default());
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let db = TestDatabase::create().await;
    let nats = TestNats::new();
    let database = Database::connect(&db.config(), &kit::db::migrator(&MIGRATIONS)).await?;
    let js = jetstream::new(nats.client().await);
    let naming = nats.naming();
    kit::streams::ensure_domain_stream(&js, &naming, &nats.config(), "kittest").await?;
    let outbox = Outbox::new("kittest");
    let tenant = Uuid::now_v7();
    let caller = CallerContext::system("bench", tenant);

    // 1. Throughput: commit a backlog, then time the relay draining it.
    let started = Instant::now();
    for chunk in 0..events / 100 {
        let mut tx = database.begin_tenant(tenant).await?;
        for i in 0..100 {
            let ping = Ping {
                body: format!("{chunk}-{i}"),
            };
            outbox
                .enqueue(&mut tx, &caller, Uuid::now_v7(), 1, &ping)
                .await?;
        }
        tx.commit().await?;
    }
    let write_secs = started.elapsed().as_secs_f64();
    let relay = OutboxRelay::new(
        database.pool().clone(),
        js.clone(),
        naming.clone(),
        RelaySettings::default(),
    );
    let started = Instant::now();
    let mut published = 0;
    loop {
        let n = relay.try_once().await?;
        if n == 0 {
            break;
        }
        published += n;
    }
    let relay_secs = started.elapsed().as_secs_f64();
    println!("outbox write:   {events} events in {write_secs:.2}s = {:.0} events/s committed (100 per transaction)", events as f64 / write_secs);
    println!(
        "outbox relay:   {published} events in {relay_secs:.2}s = {:.0} events/s published",
        published as f64 / relay_secs
    );
    testkit::bench::report(
        "outbox relay to JetStream",
        &format!(
            "{} events/s",
            testkit::bench::thousands(published as f64 / relay_secs)
        ),
        0.0,
        None,
    );

    // 2. Latency: single-event transactions at a steady pace, relay and
    // consumer running as in a service.
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let spec = ConsumerSpec {
        filter_subject: "crm.kittest.ping.sent".into(),
        ..ConsumerSpec::new("bench", "kittest")
    };
    let consumer = InboxConsumer::create(
        database.clone(),
        js.clone(),
        naming.clone(),
        &nats.config(),
        spec,
        LatencyProbe(sender),
    )
    .await?;
    // Skip the backlog of part 1.
    let mut backlog = 0;
    while backlog < published {
        backlog += consumer.try_once(500, Duration::from_secs(1)).await?.len();
    }
    while receiver.try_recv().is_ok() {}
    let shutdown = kit::Shutdown::new();
    let relay_task = tokio::spawn(relay.clone().run(shutdown.clone()));
    let consumer_task = tokio::spawn(consumer.run(shutdown.clone()));
    let samples = 2_000;
    for i in 0..samples {
        let mut tx = database.begin_tenant(tenant).await?;
        outbox
            .enqueue(
                &mut tx,
                &caller,
                Uuid::now_v7(),
                1,
                &Ping {
                    body: i.to_string(),
                },
            )
            .await?;
        tx.commit().await?;
        tokio::time::sleep(Duration::from_millis(2)).await; // ~400 events/s offered
    }
    let mut latencies = Vec::with_capacity(samples);
    while latencies.len() < samples {
        match tokio::time::timeout(Duration::from_secs(30), receiver.recv()).await {
            Ok(Some(latency)) => latencies.push(latency),
            _ => anyhow::bail!("only {} of {samples} events consumed", latencies.len()),
        }
    }
    shutdown.cancel();
    let _ = tokio::join!(relay_task, consumer_task);
    latencies.sort();
    println!(
        "commit->consume latency over {samples} events: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3
    );
    testkit::bench::report(
        "event commit -> consumer (inbox), 400 events/s",
        &format!(
            "p50 {:.1} ms, p99 {:.1} ms",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        ),
        0.0,
        None,
    );
    Ok(())
}
