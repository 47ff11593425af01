//! Gateway: identity (tenants, users, roles, access and refresh tokens,
//! JWKS) and the REST/JSON API with OpenAPI in front of the services.
//!
//! Every REST call is authenticated here and forwarded to the owning
//! service over gRPC with the caller's own token, which the service verifies
//! again (zero trust). The gateway owns its identity database.

pub mod config;
pub mod domain;
pub mod http;
pub mod keyring;
pub mod sealing;
pub mod serve;
pub mod store;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::GatewayConfig;
use crate::http::AppState;
use crate::keyring::KeyRing;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A started gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    /// Where `/metrics` is served (not the public port).
    pub admin_addr: SocketAddr,
    /// Cancels the gateway's shutdown token when dropped: a dropped gateway stops.
    shutdown: kit::StopOnDrop,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningGateway {
    pub async fn stop(self) -> anyhow::Result<()> {
        let RunningGateway { shutdown, task, .. } = self;
        drop(shutdown);
        task.await.context("gateway task panicked")?
    }

    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        kit::service::shutdown_signal().await;
        self.stop().await
    }
}

pub async fn build(config: GatewayConfig) -> anyhow::Result<RunningGateway> {
    kit::telemetry::init("gateway", config.otlp_endpoint.as_deref());
    kit::metrics::handle();
    let db = kit::db::Database::connect(&config.database, &kit::db::migrator(&MIGRATIONS))
        .await?
        .with_statement_timeout(config.upstream_timeout * 2);
    let keys = KeyRing::load(
        db.clone(),
        config.key_encryption.clone(),
        &config.issuer,
        &config.audience,
    )
    .await?;
    // Balanced over every address of each service (a headless Service's
    // pods) and connected lazily: the gateway starts (and answers with 503
    // problems) while a service is still down.
    let lazy = |url: &str, name: &str| -> anyhow::Result<tonic::transport::Channel> {
        kit::balance::channel(url, std::time::Duration::from_secs(2))
            .with_context(|| format!("GATEWAY_{name}_URL"))
    };
    let mut channels = std::collections::BTreeMap::new();
    for (domain, url) in &config.services {
        channels.insert(domain.clone(), lazy(url, &domain.to_ascii_uppercase())?);
    }
    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("binding {}", config.http_addr))?;
    let addr = listener.local_addr()?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("binding admin on {}", config.admin_addr))?;
    let admin_addr = admin_listener.local_addr()?;
    // REST routes and their OpenAPI document come from the contracts.
    let pool = http::transcode::descriptor_pool()?;
    let bindings = http::transcode::binding::bindings(&pool)?;
    let openapi = http::docs::document(&pool, &bindings);
    let state = Arc::new(AppState::new(
        config,
        db.clone(),
        keys.clone(),
        channels,
        openapi,
    ));
    let shutdown = kit::Shutdown::new();
    tokio::spawn(keys.refresh_periodically(shutdown.clone()));
    // Outbound webhooks: consume the services' events, dispatch deliveries.
    let nats_config = state.config.nats.clone();
    let nats = async_nats::ConnectOptions::new()
        .name("crm-gateway")
        .retry_on_initial_connect()
        .connect(&nats_config.url)
        .await
        .with_context(|| format!("connecting to NATS at {}", nats_config.url))?;
    let jetstream = async_nats::jetstream::new(nats);
    let naming = kit::events::Naming::new(nats_config.prefix.clone());
    // One durable consumer per domain whose events can be subscribed to.
    for domain in state.config.services.keys() {
        let fanout = kit::inbox::InboxConsumer::create(
            db.clone(),
            jetstream.clone(),
            naming.clone(),
            &nats_config,
            kit::inbox::ConsumerSpec::new("gateway", domain),
            webhooks::WebhookFanout,
        )
        .await?;
        tokio::spawn(fanout.run(shutdown.clone()));
    }
    let dispatcher = webhooks::Dispatcher::new(
        db.clone(),
        state.config.webhook_retry_base,
        state.config.webhook_egress.clone(),
    )?;
    tokio::spawn(dispatcher.run(shutdown.clone()));
    let state_limits = state.config.max_connections_per_ip;
    let app = http::router(state, &bindings)?;
    let stopping = shutdown.clone();
    let per_ip = state_limits;
    // Metrics on their own port: the public one is for the API only.
    let admin = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { kit::metrics::handle().render() }),
    );
    let admin_stopping = shutdown.clone();
    tokio::spawn(async move {
        let served = axum::serve(admin_listener, admin)
            .with_graceful_shutdown(admin_stopping.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "the gateway's admin server stopped");
        }
    });
    let task = tokio::spawn(async move {
        serve::serve(listener, app, per_ip, stopping).await?;
        db.close().await;
        Ok(())
    });
    tracing::info!(%addr, %admin_addr, "gateway serving");
    Ok(RunningGateway {
        addr,
        admin_addr,
        shutdown: shutdown.drop_guard(),
        task,
    })
}
