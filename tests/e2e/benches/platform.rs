//! The platform as `deploy/run.sh` starts it (release binaries, one process
//! per service and the gateway):
//!
//!     deploy/bench.sh platform
//!
//! 1. each process's start-to-ready time with its migrations already
//!    applied (stopped, started again, timed until `/readyz` answers 200);
//! 2. REST load through the gateway (GET by id and POST, BENCH_CLIENTS
//!    connections for BENCH_SECONDS each), then the peak resident memory of
//!    every process of the platform.

use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::Platform;
use nix::sys::signal::Signal;
use reqwest::Method;
use serde_json::json;
use testkit::bench::{env_u64, load, peak_rss_mib_of, report, thousands, RawPostgres};

const BINARIES: &[&str] = &["crm-customers", "crm-sales", "crm-gateway"];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    // The per-tenant request budget (200/s by default) would refuse most of
    // the load: this measures capacity, not the limiter.
    let mut platform = Platform::start_with(&[
        ("CRM_PROFILE", "release"),
        ("GATEWAY_TENANT_RATE_PER_SECOND", "1000000"),
    ])
    .await?;
    let result = measure(&platform, clients, seconds).await;
    platform.stop().await;
    result
}

async fn measure(platform: &Platform, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    for binary in BINARIES {
        let spec = platform.spec_of(binary)?;
        // A service answers /readyz on its admin port, the gateway on its
        // public one (run.sh exports each address as it starts each
        // process, so later ones also see the earlier ones' addresses).
        let name = binary.trim_start_matches("crm-").to_uppercase();
        let variable = if name == "GATEWAY" {
            "GATEWAY_HTTP_ADDR".to_owned()
        } else {
            format!("{name}_ADMIN_ADDR")
        };
        let ready_at = spec
            .env
            .get(&variable)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{binary} has no {variable}"))?;
        Platform::signal_and_wait(spec.pid, Signal::SIGTERM).await?;
        let started = Instant::now();
        platform.spawn(&spec)?;
        loop {
            let ready = http
                .get(format!("http://{ready_at}/readyz"))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "{binary} not ready after a minute"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        println!("{binary:<24} ready {ms:.0} ms after start");
        report(
            &format!("{binary}: start to ready (migrations applied)"),
            &format!("{ms:.0} ms"),
            0.0,
            None,
        );
    }

    let (_, token) = platform.tenant("Bench").await?;
    let mut ids = Vec::new();
    for n in 0..200 {
        let created = platform
            .call(
                Method::POST,
                "/v1/contacts",
                Some(&token),
                Some(
                    json!({"first_name": "Load", "last_name": format!("Seed{n}"),
                            "emails": [{"address": format!("seed{n}@platform.example")}]}),
                ),
            )
            .await?;
        ids.push(
            created.expect(201)["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    // Raw PostgreSQL on the same machine in the same run: the yardstick.
    let raw = RawPostgres::measure(clients, seconds).await;
    let (ids, token, base) = (Arc::new(ids), Arc::new(token), platform.base.clone());
    let (h, t, b, i) = (http.clone(), token.clone(), base.clone(), ids.clone());
    let gets = load(
        "GET /v1/contacts/{id}",
        clients,
        seconds,
        move |worker, n| {
            let url = format!(
                "{b}/v1/contacts/{}",
                i[(worker * 7919 + n as usize) % i.len()]
            );
            let (h, t) = (h.clone(), t.clone());
            async move {
                match h.get(url).bearer_auth(t.as_str()).send().await {
                    Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        },
    )
    .await;
    let (h, t, b) = (http.clone(), token.clone(), base.clone());
    let posts = load("POST /v1/contacts", clients, seconds, move |worker, n| {
        let body = json!({"first_name": "Load", "last_name": format!("W{worker}N{n}"),
                          "emails": [{"address": format!("w{worker}n{n}@platform.example")}]});
        let request = h
            .post(format!("{b}/v1/contacts"))
            .bearer_auth(t.as_str())
            .json(&body);
        async move { request.send().await.is_ok_and(|r| r.status() == 201) }
    })
    .await;
    report(
        "REST GET /v1/contacts/{id}, separate processes",
        &gets.summary(),
        gets.per_second,
        Some(&raw.select),
    );
    report(
        "REST POST /v1/contacts, separate processes",
        &posts.summary(),
        posts.per_second,
        Some(&raw.insert),
    );

    let mut total = 0.0;
    let mut each = Vec::new();
    for binary in BINARIES {
        let mib: f64 = platform
            .pids_of(binary)
            .iter()
            .map(|pid| peak_rss_mib_of(&pid.to_string()))
            .sum();
        println!("{binary:<24} peak RSS {mib:.0} MiB");
        each.push(format!("{} {mib:.0}", binary.trim_start_matches("crm-")));
        total += mib;
    }
    report(
        &format!(
            "peak RSS of the platform's {} processes under that load",
            BINARIES.len()
        ),
        &format!("{} MiB ({})", thousands(total), each.join(", ")),
        0.0,
        None,
    );
    Ok(())
}
