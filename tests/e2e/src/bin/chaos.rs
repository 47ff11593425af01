//! The platform fault suite, run by `deploy/chaos.sh` (which gives it a
//! PostgreSQL and a NATS of its own to break). It starts the platform as
//! `deploy/run.sh` does plus a second gateway, drives a mixed workload
//! through both gateways (contact creates and updates, lead conversions,
//! stage moves to won, CSV imports) and meanwhile:
//!   1. SIGKILLs NATS three times (restarted each time),
//!   2. stops PostgreSQL with `-m immediate` and starts it again,
//!   3. SIGKILLs customers and sales once each (restarted),
//!   4. restarts both gateways one after the other, gracefully (taken out
//!      of rotation, SIGTERM, started again, back in rotation once ready).
//!
//! Then it checks and prints: every acknowledged write exists exactly once;
//! every committed event was applied by each consumer (sales and the
//! gateway) and each webhook delivered once per event; no request failed
//! during the rolling restart; every failure was an error with a proper
//! status (no 4xx the client did not cause, no connection errors, no hangs
//! past the client's deadline). Exits non-zero when a check fails.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crm_proto::crm::customers::v1::LifecycleStage;
use e2e::{Platform, ProcessSpec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const WORKERS: usize = 6;
/// A request slower than this is a hang.
const CLIENT_DEADLINE: Duration = Duration::from_secs(20);
/// How long one operation is retried (idempotently) before it counts as
/// not acknowledged.
const OPERATION_DEADLINE: Duration = Duration::from_secs(45);
const SETTLE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Warmup,
    NatsKills,
    PostgresRestart,
    ServiceKills,
    RollingRestart,
    Settle,
}

impl Phase {
    const ALL: [Phase; 6] = [
        Phase::Warmup,
        Phase::NatsKills,
        Phase::PostgresRestart,
        Phase::ServiceKills,
        Phase::RollingRestart,
        Phase::Settle,
    ];
}

#[derive(Default, Debug, Clone)]
struct Tally {
    requests: u64,
    ok: u64,
    /// Failures with a proper status: 409/429/5xx with a problem document.
    proper: BTreeMap<u16, u64>,
    /// Anything else: unexpected 4xx, connection errors, hangs.
    improper: Vec<String>,
}

struct Backend {
    base: String,
    in_rotation: AtomicBool,
}

struct Ctx {
    platform: Platform,
    token: String,
    backends: Vec<Backend>,
    next: AtomicUsize,
    phase: Mutex<Phase>,
    tallies: Mutex<HashMap<Phase, Tally>>,
    stop: AtomicBool,
    requests: AtomicU64,
    max_requests: u64,
    won_stage: String,
    acked_contacts: Mutex<Vec<String>>,
    tried_contacts: Mutex<Vec<String>>,
    acked_conversions: Mutex<Vec<(String, String)>>,
    tried_conversions: Mutex<Vec<String>>,
    acked_won_accounts: Mutex<Vec<String>>,
    acked_imports: Mutex<Vec<String>>,
}

enum Payload {
    Json(Value),
    Csv(String),
}

impl Ctx {
    fn phase(&self) -> Phase {
        *self.phase.lock().expect("phase lock")
    }

    fn set_phase(&self, phase: Phase) {
        println!("[chaos] phase: {phase:?}");
        *self.phase.lock().expect("phase lock") = phase;
    }

    fn record(&self, phase: Phase, outcome: Result<(), Result<u16, String>>) {
        let mut tallies = self.tallies.lock().expect("tally lock");
        let tally = tallies.entry(phase).or_default();
        tally.requests += 1;
        match outcome {
            Ok(()) => tally.ok += 1,
            Err(Ok(status)) => *tally.proper.entry(status).or_default() += 1,
            Err(Err(what)) => tally.improper.push(what),
        }
    }

    fn backend(&self) -> &Backend {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
            if self.backends[i].in_rotation.load(Ordering::SeqCst) {
                return &self.backends[i];
            }
        }
    }

    /// One operation: retried with the same Idempotency-Key (or, without
    /// one, only when the method is idempotent) until acknowledged or its
    /// deadline passes. Answers the acknowledged reply.
    async fn op(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
        key: Option<&str>,
    ) -> Option<Value> {
        let started = Instant::now();
        let retryable =
            key.is_some() || matches!(method, Method::GET | Method::PATCH | Method::PUT);
        let mut attempt = 0u32;
        while started.elapsed() < OPERATION_DEADLINE {
            attempt += 1;
            if self.requests.fetch_add(1, Ordering::Relaxed) >= self.max_requests {
                self.stop.store(true, Ordering::SeqCst);
            }
            let phase = self.phase();
            let backend = self.backend();
            let mut request = self
                .platform
                .http
                .request(method.clone(), format!("{}{path}", backend.base))
                .bearer_auth(&self.token)
                .timeout(CLIENT_DEADLINE);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            request = match &payload {
                Payload::Json(body) => request.json(body),
                Payload::Csv(body) => request
                    .header("content-type", "text/csv")
                    .body(body.clone()),
            };
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        self.record(phase, Ok(()));
                        return Some(body);
                    }
                    let problem = content_type.starts_with("application/problem+json")
                        && body["status"].as_u64() == Some(u64::from(status.as_u16()));
                    let expected = matches!(status.as_u16(), 409 | 429) || status.is_server_error();
                    if problem && expected {
                        self.record(phase, Err(Ok(status.as_u16())));
                    } else {
                        self.record(phase, Err(Err(format!("{method} {path}: {status} {body}"))));
                        return None;
                    }
                }
                Err(error) if error.is_timeout() => {
                    self.record(
                        phase,
                        Err(Err(format!(
                            "{method} {path}: no answer within {CLIENT_DEADLINE:?}"
                        ))),
                    );
                }
                Err(error) => {
                    self.record(
                        phase,
                        Err(Err(format!(
                            "{method} {path} via {}: {error}",
                            backend.base
                        ))),
                    );
                }
            }
            if !retryable {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(20)))).await;
        }
        None
    }
}

async fn worker(ctx: Arc<Ctx>, w: usize) {
    let mut n = 0u64;
    while !ctx.stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("w{w}n{n}");
        let email = format!("{key}@chaos.example");
        ctx.tried_contacts.lock().expect("lock").push(email.clone());
        let created = ctx
            .op(
                Method::POST,
                "/v1/contacts",
                Payload::Json(json!({"first_name": "Chaos", "last_name": key,
                "emails": [{"address": email}]})),
                Some(&format!("contact-{key}")),
            )
            .await;
        if let Some(contact) = created {
            ctx.acked_contacts.lock().expect("lock").push(email);
            if let Some(id) = contact["id"].as_str() {
                ctx.op(
                    Method::PATCH,
                    &format!("/v1/contacts/{id}"),
                    Payload::Json(json!({"title": format!("v{n}")})),
                    None,
                )
                .await;
            }
        }
        if n.is_multiple_of(3) {
            convert_and_win(&ctx, &key).await;
        }
        if n.is_multiple_of(10) {
            let mut csv = String::from("first_name,last_name,email\n");
            let emails: Vec<String> = (0..5)
                .map(|j| format!("imp-{key}-{j}@chaos.example"))
                .collect();
            for (j, email) in emails.iter().enumerate() {
                csv.push_str(&format!("Imported,{key}-{j},{email}\n"));
            }
            let imported = ctx
                .op(
                    Method::POST,
                    "/v1/imports?map.first_name=first_name&map.last_name=last_name&map.email=email",
                    Payload::Csv(csv),
                    Some(&format!("import-{key}")),
                )
                .await;
            if let Some(report) = imported {
                if report["failed"].as_i64() == Some(0) {
                    ctx.acked_imports.lock().expect("lock").extend(emails);
                } else {
                    ctx.record(
                        ctx.phase(),
                        Err(Err(format!("import {key} refused rows: {report}"))),
                    );
                }
            }
        }
    }
}

/// A qualified lead converted into account + contact + deal, the deal won.
async fn convert_and_win(ctx: &Ctx, key: &str) {
    let Some(lead) = ctx
        .op(
            Method::POST,
            "/v1/leads",
            Payload::Json(
                json!({"last_name": key, "email": format!("{key}@lead.chaos.example"),
            "company": format!("Company {key}"), "status": "LEAD_STATUS_QUALIFIED"}),
            ),
            Some(&format!("lead-{key}")),
        )
        .await
    else {
        return;
    };
    let Some(lead_id) = lead["id"].as_str() else {
        return;
    };
    ctx.tried_conversions
        .lock()
        .expect("lock")
        .push(key.to_owned());
    let Some(converted) = ctx
        .op(
            Method::POST,
            &format!("/v1/leads/{lead_id}/convert"),
            Payload::Json(json!({"create_opportunity": true,
            "amount": {"amount": "1000.00", "currency": "EUR"}, "close_date": "2027-06-30"})),
            Some(&format!("convert-{key}")),
        )
        .await
    else {
        return;
    };
    let lead = &converted["lead"];
    let (Some(account), Some(deal)) = (
        lead["converted_account_id"].as_str(),
        lead["converted_opportunity_id"].as_str(),
    ) else {
        return;
    };
    ctx.acked_conversions
        .lock()
        .expect("lock")
        .push((key.to_owned(), account.to_owned()));
    let won = ctx
        .op(
            Method::POST,
            &format!("/v1/opportunities/{deal}/stage"),
            Payload::Json(json!({"stage_id": ctx.won_stage})),
            Some(&format!("won-{key}")),
        )
        .await;
    if won.is_some() {
        ctx.acked_won_accounts
            .lock()
            .expect("lock")
            .push(account.to_owned());
    }
}

/// Kills the NATS server with SIGKILL and starts it again with the same
/// command line.
async fn kill_nats(pid_file: &str) -> anyhow::Result<()> {
    let pid: i32 = std::fs::read_to_string(pid_file)?.trim().parse()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    Platform::signal_and_wait(Pid::from_raw(pid), Signal::SIGKILL).await?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{pid_file}.log"))?;
    std::process::Command::new(&exe)
        .args(&args[1..])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("restarting nats-server")?;
    Ok(())
}

async fn shell(command: &str) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(command)
        .status()
        .await?;
    if !status.success() {
        bail!("{command}: {status}");
    }
    Ok(())
}

/// Waits (up to a minute) until the gateway at `base` answers `/readyz`.
async fn wait_ready(http: &reqwest::Client, base: &str) {
    testkit::eventually(
        &format!("{base} to be ready"),
        Duration::from_secs(60),
        || async {
            let answer = http
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            answer
                .is_ok_and(|r| r.status() == StatusCode::OK)
                .then_some(())
        },
    )
    .await;
}

async fn faults(ctx: &Ctx, gateways: &mut [ProcessSpec]) -> anyhow::Result<()> {
    let pause = || tokio::time::sleep(Duration::from_secs(3));
    pause().await;
    ctx.set_phase(Phase::NatsKills);
    let pid_file = std::env::var("CRM_CHAOS_NATS_PID_FILE").context("CRM_CHAOS_NATS_PID_FILE")?;
    for _ in 0..3 {
        kill_nats(&pid_file).await?;
        pause().await;
    }
    ctx.set_phase(Phase::PostgresRestart);
    shell(&std::env::var("CRM_CHAOS_PG_STOP").context("CRM_CHAOS_PG_STOP")?).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    shell(&std::env::var("CRM_CHAOS_PG_START").context("CRM_CHAOS_PG_START")?).await?;
    pause().await;
    ctx.set_phase(Phase::ServiceKills);
    for binary in ["crm-customers", "crm-sales"] {
        ctx.platform.restart(binary, Signal::SIGKILL).await?;
        pause().await;
    }
    ctx.set_phase(Phase::RollingRestart);
    for (i, spec) in gateways.iter_mut().enumerate() {
        // Out of rotation first (as endpoints drop a terminating pod during
        // its preStop delay), then a graceful stop: requests in flight finish.
        ctx.backends[i].in_rotation.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        Platform::signal_and_wait(spec.pid, Signal::SIGTERM).await?;
        spec.pid = ctx.platform.spawn(spec)?;
        wait_ready(&ctx.platform.http, &ctx.backends[i].base).await;
        ctx.backends[i].in_rotation.store(true, Ordering::SeqCst);
        pause().await;
    }
    ctx.set_phase(Phase::Settle);
    Ok(())
}

fn snapshot<T: Clone>(list: &Mutex<Vec<T>>) -> Vec<T> {
    list.lock().expect("lock").clone()
}

/// Counts rows per key in one query: `sql` takes a text[] and answers (key, count).
async fn counts(
    pool: &sqlx::PgPool,
    sql: &str,
    keys: &[String],
) -> anyhow::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(sql).bind(keys).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

async fn ids(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<HashSet<uuid::Uuid>> {
    let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(sql).fetch_all(pool).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

async fn eventually_empty<F, Fut>(what: &str, mut probe: F) -> anyhow::Result<usize>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let started = Instant::now();
    loop {
        let left = probe().await?;
        if left == 0 || started.elapsed() > SETTLE {
            if left > 0 {
                println!("[chaos] still {left} {what} after {SETTLE:?}");
            }
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let max_requests: u64 = std::env::var("CRM_CHAOS_MAX_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    // Webhook deliveries to a receiver on loopback.
    let received: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                if let Some(id) = body["id"].as_str() {
                    *sink.lock().expect("lock").entry(id.to_owned()).or_default() += 1;
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let platform = Platform::start_with(&[
        ("GATEWAY_ALLOW_INSECURE_WEBHOOKS", "true"),
        ("GATEWAY_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("GATEWAY_WEBHOOK_RETRY_BASE_MS", "200"),
        ("GATEWAY_TENANT_RATE_PER_SECOND", "10000"),
    ])
    .await?;
    println!(
        "[chaos] platform up in {:.1}s (logs in {})",
        started.elapsed().as_secs_f64(),
        platform.state_dir.display()
    );
    // A second gateway beside the first, for the rolling restart.
    let first = platform.spec_of("crm-gateway")?;
    let mut second = first.clone();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let admin_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    second
        .env
        .insert("GATEWAY_HTTP_ADDR".into(), format!("127.0.0.1:{port}"));
    second.env.insert(
        "GATEWAY_ADMIN_ADDR".into(),
        format!("127.0.0.1:{admin_port}"),
    );
    second.pid = platform.spawn(&second)?;
    let second_base = format!("http://127.0.0.1:{port}");
    wait_ready(&platform.http, &second_base).await;

    let (tenant, token) = platform.tenant("Chaos").await?;
    let pipeline = platform
        .call(Method::POST, "/v1/pipelines", Some(&token), Some(json!({"name": "Chaos", "stages": [
            {"name": "Open"}, {"name": "Won", "kind": "STAGE_KIND_WON"}, {"name": "Lost", "kind": "STAGE_KIND_LOST"}]})))
        .await?
        .expect(201);
    let won_stage = pipeline["stages"][1]["id"]
        .as_str()
        .context("won stage")?
        .to_owned();
    platform
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(&token),
            Some(json!({"url": hook_url, "event_types": ["crm.customers.contact.created.v1"]})),
        )
        .await?
        .expect(201);

    let backends = vec![
        Backend {
            base: platform.base.clone(),
            in_rotation: AtomicBool::new(true),
        },
        Backend {
            base: format!("http://127.0.0.1:{port}"),
            in_rotation: AtomicBool::new(true),
        },
    ];
    let ctx = Arc::new(Ctx {
        platform,
        token,
        backends,
        next: AtomicUsize::new(0),
        phase: Mutex::new(Phase::Warmup),
        tallies: Mutex::default(),
        stop: AtomicBool::new(false),
        requests: AtomicU64::new(0),
        max_requests,
        won_stage,
        acked_contacts: Mutex::default(),
        tried_contacts: Mutex::default(),
        acked_conversions: Mutex::default(),
        tried_conversions: Mutex::default(),
        acked_won_accounts: Mutex::default(),
        acked_imports: Mutex::default(),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(ctx.clone(), w)))
        .collect();
    let mut gateways = vec![first, second];
    let fault_result = faults(&ctx, &mut gateways).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ctx.stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await?;
    }
    let workload_seconds = started.elapsed().as_secs_f64();
    let result = match fault_result {
        Ok(()) => verify(&ctx, &tenant, &received).await,
        Err(error) => Err(error.context("injecting the faults")),
    };
    let logs = ctx.platform.state_dir.join("logs");
    if result.is_err() || std::env::var_os("CRM_CHAOS_KEEP_LOGS").is_some() {
        let keep = std::env::temp_dir().join("crm-chaos-logs");
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::process::Command::new("cp")
            .arg("-r")
            .arg(&logs)
            .arg(&keep)
            .status();
        println!("[chaos] service logs kept in {}", keep.display());
    }
    match Arc::try_unwrap(ctx) {
        Ok(mut ctx) => ctx.platform.stop().await,
        Err(_) => eprintln!("[chaos] the platform is still shared; not stopped cleanly"),
    }
    println!(
        "[chaos] finished in {:.1}s (workload and faults {workload_seconds:.1}s)",
        started.elapsed().as_secs_f64()
    );
    result
}

async fn verify(
    ctx: &Ctx,
    tenant: &str,
    received: &Mutex<HashMap<String, u32>>,
) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    let tallies = ctx.tallies.lock().expect("lock").clone();
    println!("[chaos] requests by phase (ok / failed with a proper status / improper):");
    let mut improper = Vec::new();
    for phase in Phase::ALL {
        let t = tallies.get(&phase).cloned().unwrap_or_default();
        let proper: u64 = t.proper.values().sum();
        println!(
            "  {:<16} {:>6} requests  {:>6} ok  {:>5} failed {:?}  {:>3} improper",
            format!("{phase:?}"),
            t.requests,
            t.ok,
            proper,
            t.proper,
            t.improper.len()
        );
        if phase == Phase::RollingRestart && (proper > 0 || !t.improper.is_empty()) {
            failures.push(format!(
                "{} requests failed during the graceful rolling restart",
                proper + t.improper.len() as u64
            ));
        }
        improper.extend(t.improper);
    }
    for what in improper.iter().take(10) {
        println!("  improper: {what}");
    }
    if !improper.is_empty() {
        failures.push(format!(
            "{} requests failed without a proper status or hung",
            improper.len()
        ));
    }

    let customers = ctx.platform.database("customers").await?;
    let sales = ctx.platform.database("sales").await?;
    let gateway = ctx.platform.database("gateway").await?;
    let tenant: uuid::Uuid = tenant.parse()?;
    // Writes: each acknowledged one exactly once, none of the others twice.
    let per_point =
        "SELECT point, count(*) FROM contact_points WHERE point = ANY($1) GROUP BY point";
    let written = [
        (
            "contacts",
            snapshot(&ctx.acked_contacts),
            snapshot(&ctx.tried_contacts),
        ),
        (
            "imported contacts",
            snapshot(&ctx.acked_imports),
            Vec::new(),
        ),
    ];
    for (what, acked, tried) in written {
        let found = counts(&customers, per_point, &[acked.clone(), tried].concat()).await?;
        let missing = acked.iter().filter(|e| !found.contains_key(*e)).count();
        let doubled = found.values().filter(|c| **c > 1).count();
        println!(
            "[chaos] {what}: {} acknowledged, {missing} missing, {doubled} duplicated",
            acked.len()
        );
        if missing + doubled > 0 {
            failures.push(format!(
                "{what}: {missing} acknowledged missing, {doubled} duplicated"
            ));
        }
    }
    let conversions = snapshot(&ctx.acked_conversions);
    let tried = snapshot(&ctx.tried_conversions);
    let emails: Vec<String> = tried
        .iter()
        .map(|k| format!("{k}@lead.chaos.example"))
        .collect();
    let names: Vec<String> = tried.iter().map(|k| format!("Company {k}")).collect();
    let people = counts(&customers, per_point, &emails).await?;
    let accounts = counts(
        &customers,
        "SELECT name, count(*) FROM accounts WHERE name = ANY($1) AND deleted_at IS NULL GROUP BY name",
        &names,
    )
    .await?;
    let missing = conversions
        .iter()
        .filter(|(k, _)| {
            !people.contains_key(&format!("{k}@lead.chaos.example"))
                || !accounts.contains_key(&format!("Company {k}"))
        })
        .count();
    let doubled = people
        .values()
        .chain(accounts.values())
        .filter(|c| **c > 1)
        .count();
    println!("[chaos] conversions: {} acknowledged, {missing} missing their contact or account, {doubled} duplicated", conversions.len());
    if missing + doubled > 0 {
        failures.push(format!(
            "conversions: {missing} incomplete, {doubled} duplicated"
        ));
    }

    // Events: every committed one published and applied by each consumer.
    let unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
    for (name, pool) in [
        ("customers", &customers),
        ("sales", &sales),
        ("gateway", &gateway),
    ] {
        let left = eventually_empty("unpublished events", || async {
            let (n,): (i64,) = sqlx::query_as(unpublished).fetch_one(pool).await?;
            Ok(n as usize)
        })
        .await?;
        if left > 0 {
            failures.push(format!("{name}: {left} committed events never published"));
        }
    }
    for (producer, producer_pool, consumer, consumer_pool) in [
        ("customers", &customers, "sales", &sales),
        ("customers", &customers, "gateway", &gateway),
        ("sales", &sales, "gateway", &gateway),
    ] {
        let published = ids(producer_pool, "SELECT event_id FROM outbox").await?;
        let published = &published;
        let left = eventually_empty("events not applied", || async move {
            let applied = ids(consumer_pool, "SELECT event_id FROM processed_events").await?;
            Ok(published.difference(&applied).count())
        })
        .await?;
        println!(
            "[chaos] {producer} -> {consumer}: {} events committed, {} applied (once each: processed_events key), {left} missing",
            published.len(),
            published.len() - left
        );
        if left > 0 {
            failures.push(format!(
                "{producer} -> {consumer}: {left} events not applied"
            ));
        }
    }
    // Webhooks: one delivery row per (webhook, event), each received.
    let created: HashSet<uuid::Uuid> = {
        let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(
            "SELECT event_id FROM outbox WHERE tenant_id = $1 AND subject LIKE '%crm.customers.contact.created'",
        )
        .bind(tenant)
        .fetch_all(&customers)
        .await?;
        rows.into_iter().map(|(id,)| id).collect()
    };
    let left = eventually_empty("webhook deliveries not received", || async {
        let got = received.lock().expect("lock");
        Ok(created
            .iter()
            .filter(|id| !got.contains_key(&id.to_string()))
            .count())
    })
    .await?;
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT event_id) FROM webhook_deliveries WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&gateway)
    .await?;
    let repeats: u32 = received.lock().expect("lock").values().map(|n| n - 1).sum();
    println!(
        "[chaos] webhooks: {} contact.created events, {rows} delivery rows for {distinct} events, {left} not received, {repeats} repeated deliveries (at-least-once; receivers dedupe by id)",
        created.len()
    );
    if left > 0 || rows != distinct {
        failures.push(format!(
            "webhooks: {left} events not delivered, {} duplicate delivery rows",
            rows - distinct
        ));
    }
    // Cross-service effect: each won deal's account became a customer.
    let won = snapshot(&ctx.acked_won_accounts);
    let not_customers = eventually_empty("won accounts not yet customers", || async {
        let (customer,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM accounts WHERE id = ANY($1::uuid[]) AND lifecycle_stage = $2",
        )
        .bind(&won)
        .bind(LifecycleStage::Customer as i32)
        .fetch_one(&customers)
        .await?;
        Ok(won.len().saturating_sub(customer as usize))
    })
    .await?;
    println!(
        "[chaos] won deals: {}; accounts not customers: {not_customers}",
        won.len()
    );
    if not_customers > 0 {
        failures.push(format!(
            "{not_customers} accounts of won deals did not become customers"
        ));
    }
    if failures.is_empty() {
        println!("[chaos] every check passed");
        Ok(())
    } else {
        bail!("chaos checks failed:\n  {}", failures.join("\n  "))
    }
}
