//! The raw PostgreSQL references every benchmark is read against, alone:
//!
//!     deploy/bench.sh baseline
//!
//! `pgbench -S`, single-row INSERT + COMMIT through pgbench, and `COPY` of
//! the contacts file the import benchmark loads. BENCH_CLIENTS (default 32),
//! BENCH_SECONDS (default 10), BENCH_CONTACTS (rows of the file, default
//! 1,000,000).

use testkit::bench::{contacts_csv, env_u64, report, thousands, RawPostgres};

#[tokio::main]
async fn main() {
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 10);
    let contacts = env_u64("BENCH_CONTACTS", 1_000_000);
    let raw = RawPostgres::measure(clients, seconds).await;
    let copy = RawPostgres::copy(&contacts_csv(contacts)).await;
    for (figure, reference) in [
        (
            format!("{}, {clients} clients", raw.select.name),
            &raw.select,
        ),
        (
            format!("{}, {clients} clients", raw.insert.name),
            &raw.insert,
        ),
        (
            format!("{} ({} rows)", copy.name, thousands(contacts as f64)),
            &copy,
        ),
    ] {
        report(
            &figure,
            &format!("{}/s", thousands(reference.per_second)),
            reference.per_second,
            None,
        );
    }
}
