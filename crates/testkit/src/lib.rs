//! Test harness shared by every crate's tests.
//!
//! Each test gets its own PostgreSQL database and its own NATS subject and
//! stream prefix, so tests run in parallel against one server and leave
//! nothing behind: both are removed when the guard drops. Fault tests can
//! start a `nats-server` of their own on an ephemeral port and kill it.
//!
//! Servers are found through `CRM_TEST_DATABASE_URL` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `NATS_URL` (default
//! `nats://127.0.0.1:4222`).

pub mod bench;
mod database;
pub mod grpc;
pub mod http;
mod nats;
mod postgres;
mod services;
mod smtp;
mod tokens;

use std::future::Future;
use std::time::Duration;

pub use database::TestDatabase;
pub use nats::{NatsServer, TestNats};
pub use postgres::PgServer;
pub use services::Services;
pub use smtp::{Received, SmtpServer};
pub use tokens::TokenIssuer;

use kit::config::{AuthConfig, KeySource, ServiceConfig};

/// Polls `probe` until it returns `Some`, or panics after `deadline` with
/// `what` in the message. Patience can be raised with `CRM_TEST_PATIENCE`
/// (a multiplier) on slow machines.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let patience: u32 = std::env::var("CRM_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let started = tokio::time::Instant::now();
    let deadline = deadline * patience.max(1);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A service configuration on free ports, with the test's database, NATS
/// prefix and token issuer.
pub fn service_config(
    name: &str,
    db: &TestDatabase,
    nats: &TestNats,
    issuer: &TokenIssuer,
) -> ServiceConfig {
    ServiceConfig {
        name: name.to_owned(),
        grpc_addr: "127.0.0.1:0".parse().expect("static address"),
        admin_addr: "127.0.0.1:0".parse().expect("static address"),
        database: db.config(),
        nats: nats.config(),
        auth: AuthConfig {
            keys: KeySource::PublicKeyPem(issuer.public_key_pem().to_owned()),
            issuer: tokens::ISSUER.to_owned(),
            audience: tokens::AUDIENCE.to_owned(),
        },
        request_timeout: Duration::from_secs(10),
        concurrency_limit: 256,
        otlp_endpoint: None,
    }
}

/// Runs `future` to completion on a fresh runtime in its own thread; used by
/// guards that must clean up from `Drop`, where no runtime can be awaited.
fn block_on_side_thread<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(future);
        }
    })
    .join();
}
