//! Shared by the benchmarks: settings from the environment, a closed-loop
//! load generator that prints throughput and latency percentiles, and the
//! process's peak memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A whole-number setting from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process (VmHWM), in MiB.
pub fn peak_rss_mib() -> f64 {
    peak_rss_mib_of("self")
}

/// Peak resident memory (VmHWM) of process `pid` (or `self`), in MiB.
pub fn peak_rss_mib_of(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

pub const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim",
    "Hedy", "Claude",
];
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ra", "su", "to", "vi", "wen", "xu", "yan", "zhi", "bor", "dal", "fen",
    "gut", "hol", "jar", "kov", "lin", "mor", "nak", "pet", "ros",
];

/// A last name of three syllables (13,824 distinct), so the data set is as
/// varied as real names rather than a dozen names repeated.
pub fn last_name(i: u64) -> String {
    let n = SYLLABLES.len() as u64;
    let mut name: String = [i % n, (i / n) % n, (i / (n * n)) % n]
        .iter()
        .map(|k| SYLLABLES[*k as usize])
        .collect();
    name[..1].make_ascii_uppercase();
    name
}

/// Person `i` of the benchmark data set: first name, last name, e-mail.
pub fn bench_person(i: u64) -> (&'static str, String, String) {
    let (first, last) = (FIRST[(i % 12) as usize], last_name(i * 7919));
    let email = format!(
        "{}.{}{i}@bench.example",
        first.to_lowercase(),
        last.to_lowercase()
    );
    (first, last, email)
}

/// The contacts file the import benchmark loads (and raw COPY is measured
/// on): `rows` distinct people with an e-mail, a phone and a tag.
pub fn contacts_csv(rows: u64) -> String {
    let mut csv = String::from("first_name,last_name,email,phone,tags\n");
    for i in 0..rows {
        let (first, last, email) = bench_person(i);
        csv.push_str(&format!("{first},{last},{email},+4915{i:09},bench\n"));
    }
    csv
}

/// What a load phase measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Measured {
    /// "1,234 req/s, p95 4.1 ms, p99 9.0 ms"
    pub fn summary(&self) -> String {
        format!(
            "{} req/s, p95 {:.1} ms, p99 {:.1} ms",
            thousands(self.per_second),
            self.p95_ms,
            self.p99_ms
        )
    }
}

/// `count` HTTP/2 connections to a service's gRPC address, for load
/// generators to spread their clients over (one connection would
/// serialise them on one stream window).
pub async fn channels(
    grpc_addr: std::net::SocketAddr,
    count: usize,
) -> anyhow::Result<Vec<tonic::transport::Channel>> {
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(
            tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))?
                .connect()
                .await?,
        );
    }
    Ok(channels)
}

/// Runs `call(worker, n)` from `clients` tasks for `seconds`, each call
/// after the previous one answered, prints successful requests/s and
/// latency percentiles, and answers them. `call` returns whether the
/// request succeeded.
pub async fn load<F, Fut>(name: &str, clients: usize, seconds: u64, call: F) -> Measured
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
    if all.is_empty() {
        println!("{name:<24} no requests completed");
        return Measured::default();
    }
    all.sort();
    let pick =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    // Only answered requests count: a refusal (429, 5xx) is not throughput.
    let measured = Measured {
        per_second: (all.len() as u64).saturating_sub(failures) as f64 / elapsed,
        p50_ms: pick(0.5),
        p95_ms: pick(0.95),
        p99_ms: pick(0.99),
    };
    println!(
        "{name:<24} {:>7.0} req/s   p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms   ({} requests, {failures} failed)",
        measured.per_second,
        measured.p50_ms,
        measured.p95_ms,
        measured.p99_ms,
        all.len()
    );
    measured
}

/// A figure of the database itself, measured in the same run, that a
/// service's figure is read against.
#[derive(Debug, Clone)]
pub struct Reference {
    pub name: String,
    pub per_second: f64,
}

impl Reference {
    /// `rate` as a percentage of this reference.
    pub fn share(&self, rate: f64) -> f64 {
        100.0 * rate / self.per_second.max(1.0)
    }
}

/// `12345.6` -> `12,346`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints one row of the benchmark table (`deploy/bench.sh all` collects
/// every line that starts with `| `):
/// `| figure | measured | reference | share of it |`.
pub fn report(figure: &str, measured: &str, rate: f64, reference: Option<&Reference>) {
    match reference {
        Some(reference) => println!(
            "| {figure} | {measured} | {} {}/s | {:.1}% |",
            reference.name,
            thousands(reference.per_second),
            reference.share(rate)
        ),
        None => println!("| {figure} | {measured} | | |"),
    }
}

/// Raw PostgreSQL on the same server, measured in the same run, so a
/// service's figures read as a share of what the database itself does:
/// `pgbench -S` (primary-key selects) and single-row INSERT + COMMIT through
/// pgbench with a custom script, each from `clients` connections for
/// `seconds`. Without a `pgbench` binary the same two workloads run through
/// sqlx in this process (and are named so).
pub struct RawPostgres {
    pub select: Reference,
    pub insert: Reference,
}

impl RawPostgres {
    pub async fn measure(clients: usize, seconds: u64) -> Self {
        let db = crate::TestDatabase::create().await;
        let url = db.config().migration_url.expect("an admin URL");
        let raw = match pgbench() {
            // libpq refuses sqlx's own URL parameters (statement cache, ...).
            Some(pgbench) => Self::with_pgbench(
                &pgbench,
                url.split('?').next().unwrap_or(&url),
                clients,
                seconds,
            ),
            None => Self::in_process(&url, clients, seconds).await,
        };
        for reference in [&raw.select, &raw.insert] {
            println!(
                "{:<24} {:>7.0} /s (reference)",
                reference.name, reference.per_second
            );
        }
        raw
    }

    fn with_pgbench(pgbench: &std::path::Path, url: &str, clients: usize, seconds: u64) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(clients)
            .to_string();
        let run = |args: &[&str]| -> f64 {
            let output = std::process::Command::new(pgbench)
                .args(args)
                .arg(url)
                .output()
                .expect("run pgbench");
            assert!(
                output.status.success(),
                "pgbench {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            // "tps = 23950.123456 (without initial connection time)"
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("tps = "))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|tps| tps.parse().ok())
                .unwrap_or(0.0)
        };
        run(&["-i", "-q", "-s", "1"]);
        let script = std::env::temp_dir().join(format!("crm-insert-{}.sql", std::process::id()));
        std::fs::write(
            &script,
            "CREATE TABLE IF NOT EXISTS raw_writes (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body text NOT NULL);\n",
        )
        .expect("write the pgbench script");
        run(&["-n", "-t", "1", "-f", &script.to_string_lossy()]);
        std::fs::write(
            &script,
            "INSERT INTO raw_writes VALUES (gen_random_uuid(), gen_random_uuid(), 'write');\n",
        )
        .expect("write the pgbench script");
        let (clients, seconds) = (clients.to_string(), seconds.to_string());
        let select = run(&["-n", "-S", "-c", &clients, "-j", &threads, "-T", &seconds]);
        let insert = run(&[
            "-n",
            "-c",
            &clients,
            "-j",
            &threads,
            "-T",
            &seconds,
            "-f",
            &script.to_string_lossy(),
        ]);
        let _ = std::fs::remove_file(&script);
        RawPostgres {
            select: Reference {
                name: "pgbench -S".into(),
                per_second: select,
            },
            insert: Reference {
                name: "pgbench INSERT+commit".into(),
                per_second: insert,
            },
        }
    }

    async fn in_process(url: &str, clients: usize, seconds: u64) -> Self {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(clients as u32)
            .connect(url)
            .await
            .expect("connect for the raw baseline");
        sqlx::raw_sql(
            "CREATE TABLE raw (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, body text NOT NULL);
             INSERT INTO raw SELECT g, gen_random_uuid(), 'row ' || g FROM generate_series(1, 100000) g;
             CREATE TABLE raw_writes (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body text NOT NULL);
             ANALYZE raw;",
        )
        .execute(&pool)
        .await
        .expect("baseline tables");
        let reads = pool.clone();
        let select = load("raw PG select by key", clients, seconds, move |_, n| {
            let pool = reads.clone();
            async move {
                sqlx::query("SELECT body FROM raw WHERE id = $1")
                    .bind(((n * 7919) % 100_000 + 1) as i64)
                    .fetch_one(&pool)
                    .await
                    .is_ok()
            }
        })
        .await;
        let writes = pool.clone();
        let insert = load("raw PG insert+commit", clients, seconds, move |_, n| {
            let pool = writes.clone();
            async move {
                sqlx::query("INSERT INTO raw_writes VALUES ($1, $2, $3)")
                    .bind(uuid::Uuid::now_v7())
                    .bind(uuid::Uuid::now_v7())
                    .bind(format!("write {n}"))
                    .execute(&pool)
                    .await
                    .is_ok()
            }
        })
        .await;
        pool.close().await;
        RawPostgres {
            select: Reference {
                name: "raw select by key (sqlx)".into(),
                per_second: select.per_second,
            },
            insert: Reference {
                name: "raw INSERT+commit (sqlx)".into(),
                per_second: insert.per_second,
            },
        }
    }

    /// Raw `COPY ... FROM STDIN (FORMAT csv)` of `csv` (with a header line)
    /// into a table of text columns named after it, without indexes: the
    /// database's own ceiling for loading that file.
    pub async fn copy(csv: &str) -> Reference {
        use sqlx::Connection as _;
        let db = crate::TestDatabase::create().await;
        let mut connection =
            sqlx::PgConnection::connect(&db.config().migration_url.expect("an admin URL"))
                .await
                .expect("connect for the raw COPY");
        let header = csv.lines().next().unwrap_or_default();
        let columns: Vec<String> = header.split(',').map(|c| format!("\"{c}\" text")).collect();
        sqlx::raw_sql(&format!("CREATE TABLE raw_import ({})", columns.join(", ")))
            .execute(&mut connection)
            .await
            .expect("raw import table");
        let started = Instant::now();
        let mut copy = connection
            .copy_in_raw("COPY raw_import FROM STDIN (FORMAT csv, HEADER true)")
            .await
            .expect("start COPY");
        copy.send(csv.as_bytes()).await.expect("COPY data");
        let rows = copy.finish().await.expect("finish COPY");
        let reference = Reference {
            name: "raw COPY of the same CSV".into(),
            per_second: rows as f64 / started.elapsed().as_secs_f64(),
        };
        println!(
            "{:<24} {rows} rows in {:.1}s = {:.0} rows/s (reference)",
            reference.name,
            started.elapsed().as_secs_f64(),
            reference.per_second
        );
        reference
    }
}

/// The `pgbench` on `PATH`, else the newest in Debian's PostgreSQL folders.
fn pgbench() -> Option<std::path::PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("pgbench"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/pgbench"))
            .filter(|p| p.is_file())
            .collect();
        found.sort_by_key(|p| {
            p.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok())
        });
        found.pop()
    })
}

/// Imports a CSV of contacts through the customers service's DataService;
/// answers the last progress report and the seconds the import took.
pub async fn import_contacts(
    data: &mut crm_proto::crm::customers::v1::data_service_client::DataServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            kit::auth::BearerToken,
        >,
    >,
    csv: String,
    dedup: crm_proto::crm::customers::v1::DedupPolicy,
) -> anyhow::Result<(crm_proto::crm::customers::v1::ImportResponse, f64)> {
    use crm_proto::crm::customers::v1::{
        import_request, Entity, ImportFormat, ImportHeader, ImportRequest, ImportResponse,
    };
    let header = ImportHeader {
        entity: Entity::Contact as i32,
        format: ImportFormat::Csv as i32,
        dedup: dedup as i32,
        ..Default::default()
    };
    let mut messages = vec![ImportRequest {
        part: Some(import_request::Part::Header(header)),
    }];
    messages.extend(csv.as_bytes().chunks(1 << 20).map(|c| ImportRequest {
        part: Some(import_request::Part::Chunk(c.to_vec())),
    }));
    drop(csv);
    let started = Instant::now();
    let mut stream = data
        .import(futures::stream::iter(messages))
        .await?
        .into_inner();
    let mut last = ImportResponse::default();
    while let Some(update) = stream.message().await? {
        last = update;
    }
    Ok((last, started.elapsed().as_secs_f64()))
}
