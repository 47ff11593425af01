//! Sales service benchmark, through its gRPC API on real PostgreSQL and
//! NATS. Prints its figures:
//!
//!     deploy/bench.sh sales
//!
//! 1. CreateOpportunity and MoveStage throughput from BENCH_CLIENTS clients;
//! 2. GetForecast latency over BENCH_OPPORTUNITIES opportunities (default
//!    1,000,000, loaded straight into the database with generate_series, as
//!    creating them one by one would take the whole benchmark), for the
//!    whole tenant and for one owner, for a quarter (about 125,000 deals),
//!    from one client and from BENCH_CLIENTS at once.
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per phase (default 10).

use std::sync::Arc;
use std::time::Instant;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::forecast_service_client::ForecastServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use crm_proto::crm::sales::v1::*;
use kit::auth::BearerToken;
use testkit::bench::{env_u64, load, peak_rss_mib, report, thousands, RawPostgres};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};
use tokio::sync::Mutex;

fn stage(name: &str, probability: i32, kind: StageKind) -> Stage {
    Stage {
        name: name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opportunities = env_u64("BENCH_OPPORTUNITIES", 1_000_000);
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let (db, nats, issuer) = (
        TestDatabase::create().await,
        TestNats::new(),
        TokenIssuer::new(),
    );
    let mut service = service_config("sales", &db, &nats, &issuer);
    service.database.max_connections = 40;
    let running = sales::build(sales::config::SalesConfig {
        service,
        customers_url: "http://127.0.0.1:9".into(),
        scan_interval: std::time::Duration::from_secs(60),
    })
    .await?;
    let tenant = uuid::Uuid::now_v7();
    let bearer = BearerToken::new(&issuer.admin_token(tenant))?;
    let channels = testkit::bench::channels(running.grpc_addr, 4).await?;
    let pipeline = PipelineServiceClient::with_interceptor(channels[0].clone(), bearer.clone())
        .create_pipeline(CreatePipelineRequest {
            request_id: String::new(),
            pipeline: Some(Pipeline {
                name: "Bench".into(),
                stages: vec![
                    stage("Qualify", 10, StageKind::Open),
                    stage("Propose", 50, StageKind::Open),
                    stage("Commit", 80, StageKind::Open),
                    stage("Won", 100, StageKind::Won),
                    stage("Lost", 0, StageKind::Lost),
                ],
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .pipeline
        .unwrap_or_default();
    let stages: Vec<String> = pipeline.stages.iter().map(|s| s.id.clone()).collect();
    let opportunity_client = |i: usize| {
        OpportunityServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            bearer.clone(),
        )
    };

    // Raw PostgreSQL on the same machine in the same run: the yardstick.
    let raw = RawPostgres::measure(clients, seconds).await;

    // 1. Creates.
    let created = Arc::new(Mutex::new(vec![Vec::<String>::new(); clients]));
    let clients_for_create: Vec<_> = (0..clients).map(opportunity_client).collect();
    let sink = created.clone();
    let creates = load("CreateOpportunity", clients, seconds, move |worker, n| {
        let mut client = clients_for_create[worker].clone();
        let sink = sink.clone();
        async move {
            let request = CreateOpportunityRequest {
                opportunity: Some(Opportunity {
                    name: format!("Deal {worker}-{n}"),
                    amount: Some(Money {
                        amount: format!("{}.50", 1000 + n),
                        currency: "EUR".into(),
                    }),
                    close_date: "2027-02-15".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            };
            match client.create_opportunity(request).await {
                Ok(response) => {
                    if let Some(o) = response.into_inner().opportunity {
                        sink.lock().await[worker].push(o.id);
                    }
                    true
                }
                Err(_) => false,
            }
        }
    })
    .await;

    // Reads, for comparison with the writes.
    let mine_for_get = Arc::new(created.lock().await.clone());
    let clients_for_get: Vec<_> = (0..clients).map(opportunity_client).collect();
    let gets = load("GetOpportunity", clients, seconds, move |worker, n| {
        let mut client = clients_for_get[worker].clone();
        let ids = mine_for_get.clone();
        async move {
            let own = &ids[worker];
            if own.is_empty() {
                return false;
            }
            let id = own[(n as usize) % own.len()].clone();
            client
                .get_opportunity(GetOpportunityRequest { id })
                .await
                .is_ok()
        }
    })
    .await;

    // 2. Stage moves: each client walks its own deals between two stages.
    let mine = Arc::new(created.lock().await.clone());
    let clients_for_move: Vec<_> = (0..clients).map(opportunity_client).collect();
    let stages_for_move = stages.clone();
    let moves = load("MoveStage", clients, seconds, move |worker, n| {
        let mut client = clients_for_move[worker].clone();
        let ids = mine.clone();
        let stages = stages_for_move.clone();
        async move {
            let own = &ids[worker];
            if own.is_empty() {
                return false;
            }
            let id = own[(n as usize) % own.len()].clone();
            let to = stages[1 + ((n as usize / own.len()) % 2)].clone();
            client
                .move_stage(MoveStageRequest {
                    id,
                    stage_id: to,
                    lost_reason: String::new(),
                    expected_version: 0,
                })
                .await
                .is_ok()
        }
    })
    .await;

    report(
        "gRPC CreateOpportunity (row + event)",
        &creates.summary(),
        creates.per_second,
        Some(&raw.insert),
    );
    report(
        "gRPC GetOpportunity",
        &gets.summary(),
        gets.per_second,
        Some(&raw.select),
    );
    report(
        "gRPC MoveStage (row + history + event)",
        &moves.summary(),
        moves.per_second,
        Some(&raw.insert),
    );

    // 3. Forecasts over a large book: rows straight into the table.
    let started = Instant::now();
    let pool = db.admin_pool().await;
    let owners: Vec<uuid::Uuid> = (0..50).map(|_| uuid::Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO opportunities (tenant_id, id, pipeline_id, stage_id, name, amount, currency, close_date, probability, forecast_category, status, owner_id, closed_at) \
         SELECT $1, gen_random_uuid(), $2, ($3::uuid[])[1 + g % 5], 'Bulk ' || g, (1000 + g % 50000)::numeric + 0.25, 'EUR', \
                date '2026-01-01' + (g % 730)::int, (ARRAY[10, 50, 80, 100, 0])[1 + g % 5], 1 + g % 5, \
                CASE g % 5 WHEN 3 THEN 2 WHEN 4 THEN 3 ELSE 1 END, ($4::uuid[])[1 + g % 50], \
                CASE WHEN g % 5 >= 3 THEN now() END \
         FROM generate_series(1::bigint, $5) g",
    )
    .bind(tenant)
    .bind(uuid::Uuid::parse_str(&pipeline.id)?)
    .bind(stages.iter().map(|s| uuid::Uuid::parse_str(s)).collect::<Result<Vec<_>, _>>()?)
    .bind(&owners)
    .bind(opportunities as i64)
    .execute(&pool)
    .await?;
    sqlx::query("VACUUM ANALYZE opportunities")
        .execute(&pool)
        .await?;
    println!(
        "loaded {opportunities} opportunities in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let forecast_client = |i: usize| {
        ForecastServiceClient::with_interceptor(
            channels[i % channels.len()].clone(),
            bearer.clone(),
        )
    };
    // One client alone (the latency a user sees), then all of them at once.
    let cases = [
        ("GetForecast tenant", String::new(), 1),
        ("GetForecast owner", owners[7].to_string(), 1),
        ("GetForecast tenant", String::new(), clients),
        ("GetForecast owner", owners[7].to_string(), clients),
    ];
    for (name, owner, clients) in cases {
        let clients_for_forecast: Vec<_> = (0..clients).map(forecast_client).collect();
        let label = format!("{name} x{clients}");
        let forecast = load(&label, clients, seconds, move |worker, _| {
            let mut client = clients_for_forecast[worker].clone();
            let owner_id = owner.clone();
            async move {
                client
                    .get_forecast(GetForecastRequest {
                        period_start: "2026-04-01".into(),
                        period_end: "2026-06-30".into(),
                        owner_id,
                        team_id: String::new(),
                        currency: "EUR".into(),
                    })
                    .await
                    .is_ok()
            }
        })
        .await;
        report(
            &format!(
                "gRPC {name} quarter over {} deals, {clients} client(s)",
                thousands(opportunities as f64)
            ),
            &forecast.summary(),
            forecast.per_second,
            None,
        );
    }
    println!(
        "peak RSS of this process (service + load generator): {:.0} MiB",
        peak_rss_mib()
    );
    running.stop().await?;
    Ok(())
}
