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

/// Runs `call(worker, n)` from `clients` tasks for `seconds`, each call
/// after the previous one answered, prints requests/s, p50 and p99, and
/// answers the requests/s. `call` returns whether the request succeeded.
pub async fn load<F, Fut>(name: &str, clients: usize, seconds: u64, call: F) -> f64
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
        return 0.0;
    }
    all.sort();
    let pick =
        |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "{name:<24} {:>7.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests, {failures} failed)",
        all.len() as f64 / elapsed,
        pick(0.5),
        pick(0.99),
        all.len()
    );
    all.len() as f64 / elapsed
}

/// Raw PostgreSQL on the same server, measured in the same run, so a
/// service's figures read as a share of what the database itself does:
/// primary-key selects (like `pgbench -S`) and single-row INSERT + COMMIT,
/// each from `clients` connections for `seconds`.
pub struct RawPostgres {
    pub selects_per_second: f64,
    pub inserts_per_second: f64,
}

impl RawPostgres {
    pub async fn measure(clients: usize, seconds: u64) -> Self {
        let db = crate::TestDatabase::create().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(clients as u32)
            .connect(&db.config().migration_url.expect("an admin URL"))
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
        let selects_per_second = load("raw PG select by key", clients, seconds, move |_, n| {
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
        let inserts_per_second = load("raw PG insert+commit", clients, seconds, move |_, n| {
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
            selects_per_second,
            inserts_per_second,
        }
    }

    /// Rows per second of raw `COPY ... FROM STDIN (FORMAT csv)` of `csv`
    /// (with a header line) into a table of text columns named after it,
    /// without indexes: the database's own ceiling for loading that file.
    pub async fn copy_rows_per_second(csv: &str) -> f64 {
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
        let started = std::time::Instant::now();
        let mut copy = connection
            .copy_in_raw("COPY raw_import FROM STDIN (FORMAT csv, HEADER true)")
            .await
            .expect("start COPY");
        copy.send(csv.as_bytes()).await.expect("COPY data");
        let rows = copy.finish().await.expect("finish COPY");
        let rate = rows as f64 / started.elapsed().as_secs_f64();
        println!(
            "{:<28} {rows} rows in {:.1}s = {rate:.0} rows/s",
            "raw PG COPY (same CSV)",
            started.elapsed().as_secs_f64()
        );
        rate
    }

    /// `rate` as a percentage of raw selects.
    pub fn of_selects(&self, rate: f64) -> f64 {
        100.0 * rate / self.selects_per_second.max(1.0)
    }

    /// `rate` as a percentage of raw single-row INSERT + COMMIT.
    pub fn of_inserts(&self, rate: f64) -> f64 {
        100.0 * rate / self.inserts_per_second.max(1.0)
    }
}
