//! REST through the gateway to the customers service, 32 connections.
//! Prints requests/s and p50/p99 per route, and the process's peak RSS
//! (gateway and customers run in this one process here).
//!
//!     deploy/bench.sh gateway
//!
//! BENCH_CLIENTS (default 32), BENCH_SECONDS per route (default 10).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::config::GatewayConfig;
use kit::config::{AuthConfig, KeySource};
use serde_json::{json, Value};
use testkit::{service_config, TestDatabase, TestNats, TokenIssuer};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn load<F, Fut>(name: &str, clients: usize, seconds: u64, call: F)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut failures, mut n) = (Vec::new(), 0u64, 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                if !call(worker, n).await {
                    failures += 1;
                }
                latencies.push(t.elapsed());
                n += 1;
            }
            (latencies, failures)
        }));
    }
    let (mut all, mut failures) = (Vec::new(), 0);
    for task in tasks {
        if let Ok((latencies, failed)) = task.await {
            all.extend(latencies);
            failures += failed;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pick =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{name:<22} {:>7.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests, {failures} failed)",
        all.len() as f64 / elapsed,
        pick(0.5),
        pick(0.99),
        all.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env("BENCH_CLIENTS", 32) as usize;
    let seconds = env("BENCH_SECONDS", 10);
    let (gateway_db, customers_db, nats) = (
        TestDatabase::create().await,
        TestDatabase::create().await,
        TestNats::new(),
    );
    let customers_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut gateway_db_config = gateway_db.config();
    gateway_db_config.max_connections = 20;
    let gateway = gateway::build(GatewayConfig {
        http_addr: "127.0.0.1:0".parse()?,
        database: gateway_db_config,
        customers_url: format!("http://127.0.0.1:{customers_port}"),
        sales_url: "http://127.0.0.1:9".into(),
        bootstrap_token: Some("bootstrap-secret-for-the-benchmark".into()),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
        access_ttl: Duration::from_secs(3600),
        refresh_ttl: Duration::from_secs(3600),
        otlp_endpoint: None,
        upstream_timeout: Duration::from_secs(5),
        tenant_rate_per_second: 1_000_000,
        concurrency_limit: 1024,
        nats: nats.config(),
        webhook_retry_base: Duration::from_secs(5),
        allow_insecure_webhooks: true,
        cors_origins: vec!["https://app.example.com".into()],
    })
    .await?;
    let base = format!("http://{}", gateway.addr);
    let mut config = service_config("customers", &customers_db, &nats, &TokenIssuer::new());
    config.grpc_addr = format!("127.0.0.1:{customers_port}").parse()?;
    config.database.max_connections = 30;
    config.auth = AuthConfig {
        keys: KeySource::JwksUrl(format!("{base}/.well-known/jwks.json")),
        issuer: "crm-gateway".into(),
        audience: "crm".into(),
    };
    let customers = customers::build(config).await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let tenant = json!({"name": "Bench", "admin_email": "admin@bench.example", "admin_name": "Bench", "admin_password": "bench password 1"});
    http.post(format!("{base}/v1/tenants"))
        .bearer_auth("bootstrap-secret-for-the-benchmark")
        .json(&tenant)
        .send()
        .await?
        .error_for_status()?;
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": "admin@bench.example", "password": "bench password 1"}))
        .send()
        .await?
        .json()
        .await?;
    let token = Arc::new(
        login["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::<String>::new()));

    let (h, b, t, i) = (http.clone(), base.clone(), token.clone(), ids.clone());
    load("POST /v1/contacts", clients, seconds, move |worker, n| {
        let (h, b, t, i) = (h.clone(), b.clone(), t.clone(), i.clone());
        async move {
            let body = json!({"first_name": "Bench", "last_name": format!("W{worker}N{n}"), "emails": [{"address": format!("w{worker}n{n}@bench.example")}]});
            let Ok(response) = h.post(format!("{b}/v1/contacts")).bearer_auth(t.as_str()).json(&body).send().await else { return false };
            if response.status() != 201 {
                return false;
            }
            let Ok(created) = response.json::<Value>().await else { return false };
            i.lock().await.push(created["id"].as_str().unwrap_or_default().to_owned());
            true
        }
    })
    .await;
    let ids = Arc::new(ids.lock().await.clone());
    for (name, path) in [
        ("GET /v1/contacts/{id}", ""),
        ("GET /v1/contacts?50", "list"),
        ("GET /v1/contacts/{id}/360", "360"),
    ] {
        let (h, b, t, i) = (http.clone(), base.clone(), token.clone(), ids.clone());
        load(name, clients, seconds, move |worker, n| {
            let id = i[(worker * 7919 + n as usize * 104_729) % i.len().max(1)].clone();
            let url = match path {
                "list" => format!("{b}/v1/contacts?page_size=50"),
                "360" => format!("{b}/v1/contacts/{id}/360"),
                _ => format!("{b}/v1/contacts/{id}"),
            };
            let (h, t) = (h.clone(), t.clone());
            async move {
                match h.get(url).bearer_auth(t.as_str()).send().await {
                    Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
    }
    println!(
        "peak RSS of gateway + customers (one process): {:.0} MiB",
        peak_rss_mib()
    );
    customers.stop().await?;
    gateway.stop().await?;
    Ok(())
}
