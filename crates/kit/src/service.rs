//! gRPC server bootstrap and the admin HTTP port, the same for every service.
//!
//! [`ServiceContext::connect`] opens what a service needs (database with
//! migrations, NATS with its stream, token verifier); [`launch`] serves the
//! service's gRPC routes with health, reflection, authentication, request
//! timeout, load shedding and metrics, starts the outbox relay and the
//! service's consumers, and serves `/metrics`, `/healthz` and `/readyz` on
//! the admin port. Tests call the same two functions with port 0.
//!
//! Shutdown (SIGTERM/SIGINT or [`RunningService::stop`]): health turns
//! NOT_SERVING, the server stops accepting and drains in-flight calls, then
//! the relay flushes committed events, consumers stop, and the pool closes.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tracing::Instrument;

use crate::auth::{AuthLayer, TokenVerifier};
use crate::config::ServiceConfig;
use crate::db::{self, Database};
use crate::events::Naming;
use crate::inbox::{ConsumerSpec, EventHandler, InboxConsumer};
use crate::outbox::{Outbox, OutboxRelay, RelaySettings};
use crate::{metrics as crm_metrics, streams, telemetry, Shutdown, StopOnDrop};

/// Shared handles a service's handlers and consumers are built from.
#[derive(Clone)]
pub struct ServiceContext {
    pub config: ServiceConfig,
    pub db: Database,
    pub nats: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub naming: Naming,
    pub outbox: Outbox,
    pub verifier: Arc<TokenVerifier>,
}

impl ServiceContext {
    /// Initialises telemetry, connects (and migrates) the database, connects
    /// NATS and provisions the service's stream.
    pub async fn connect(config: ServiceConfig, migrations: &Migrator) -> anyhow::Result<Self> {
        telemetry::init(&config.name, config.otlp_endpoint.as_deref());
        let db = Database::connect(&config.database, &db::migrator(migrations))
            .await?
            .with_statement_timeout(config.request_timeout);
        let nats = async_nats::ConnectOptions::new()
            .name(format!("crm-{}", config.name))
            .retry_on_initial_connect()
            .connect(&config.nats.url)
            .await
            .with_context(|| format!("connecting to NATS at {}", config.nats.url))?;
        let jetstream = jetstream::new(nats.clone());
        let naming = Naming::new(config.nats.prefix.clone());
        streams::ensure_domain_stream(&jetstream, &naming, &config.nats, &config.name).await?;
        let verifier = Arc::new(TokenVerifier::new(&config.auth)?);
        let outbox = Outbox::new(&config.name);
        Ok(Self {
            config,
            db,
            nats,
            jetstream,
            naming,
            outbox,
            verifier,
        })
    }

    /// A durable consumer of another domain's events through the inbox
    /// (once per event, in order per aggregate), as a background task.
    pub async fn consumer<H: EventHandler>(
        &self,
        spec: ConsumerSpec,
        handler: H,
    ) -> anyhow::Result<BackgroundTask> {
        let consumer = InboxConsumer::create(
            self.db.clone(),
            self.jetstream.clone(),
            self.naming.clone(),
            &self.config.nats,
            spec,
            handler,
        )
        .await?;
        Ok(background(move |shutdown| consumer.run(shutdown)))
    }

    pub fn relay(&self) -> OutboxRelay {
        OutboxRelay::new(
            self.db.pool().clone(),
            self.jetstream.clone(),
            self.naming.clone(),
            RelaySettings::default(),
        )
    }
}

/// A background task (consumer, scheduler) stopped by the shutdown token.
pub type BackgroundTask = Box<dyn FnOnce(Shutdown) -> BoxFuture<'static, ()> + Send>;

/// Wraps an `async fn(Shutdown)`-style task.
pub fn background<F, Fut>(task: F) -> BackgroundTask
where
    F: FnOnce(Shutdown) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Box::new(move |shutdown| Box::pin(task(shutdown)))
}

/// What the service serves over gRPC: its services and their proto
/// names, which `grpc.health.v1` reports and reflection lists (only these:
/// a client asking a service's reflection is never sent to another's).
#[derive(Default)]
pub struct GrpcRoutes {
    pub routes: Routes,
    /// Fully qualified names, `crm.customers.v1.ContactService`, each
    /// taken from the generated server's `NamedService::NAME`.
    pub health_names: Vec<&'static str>,
}

impl GrpcRoutes {
    /// Serves `service`, known by its proto name.
    pub fn serve<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.health_names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }
}

/// A started service.
pub struct RunningService {
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// Cancels the service's shutdown token when dropped, so a service
    /// that is dropped (a test that ends, a panic) stops instead of running on.
    shutdown: StopOnDrop,
    main: JoinHandle<anyhow::Result<()>>,
}

impl RunningService {
    /// Stops gracefully and waits until everything is closed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let RunningService { shutdown, main, .. } = self;
        drop(shutdown);
        main.await.context("service task panicked")?
    }

    /// Runs until SIGTERM/SIGINT, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        self.stop().await
    }
}

/// Serves `grpc` on the configured addresses (port 0 picks a free one).
pub async fn launch(
    context: ServiceContext,
    grpc: GrpcRoutes,
    tasks: Vec<BackgroundTask>,
) -> anyhow::Result<RunningService> {
    let config = &context.config;
    crm_metrics::handle(); // install the recorder before the first request
    let grpc_listener = TcpListener::bind(config.grpc_addr)
        .await
        .with_context(|| format!("binding gRPC on {}", config.grpc_addr))?;
    let admin_listener = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("binding admin on {}", config.admin_addr))?;
    let grpc_addr = grpc_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in std::iter::once("").chain(grpc.health_names.iter().copied()) {
        health_reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    // Both reflection versions: grpcurl and older tools still ask v1alpha.
    let reflection = || {
        grpc.health_names.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health"),
            |builder, name| builder.with_service_name(*name),
        )
    };
    let reflection_v1 = reflection()
        .build_v1()
        .context("building reflection service")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection service")?;

    let shutdown = Shutdown::new();
    // Background work stops only after the server has drained, so events
    // committed by the last in-flight calls are still relayed.
    let background_shutdown = Shutdown::new();

    let layers = tower::ServiceBuilder::new()
        .layer(RequestLayer::new(
            config.concurrency_limit,
            &grpc.health_names,
        ))
        .layer(AuthLayer::new(context.verifier.clone()));
    // HTTP/1.1 + gRPC-Web too, so browsers can call the same API with the
    // same tokens (frontends usually go through the gateway's REST API).
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .timeout(config.request_timeout)
        .layer(layers)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_routes(grpc.routes)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                // Without TCP_NODELAY, a response written in two parts waits
                // for the client's delayed ACK: 40 ms on some calls.
                |stream| {
                    stream.inspect(|s| {
                        let _ = s.set_nodelay(true);
                    })
                },
            ),
            shutdown.clone().cancelled_owned(),
        );

    let admin = axum::Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .with_state(context.clone());
    let admin_server = axum::serve(admin_listener, admin)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());

    let mut handles = vec![tokio::spawn(
        context.relay().run(background_shutdown.clone()),
    )];
    for task in tasks {
        handles.push(tokio::spawn(task(background_shutdown.clone())));
    }

    // The gRPC health status (what Kubernetes' gRPC readiness probe asks)
    // follows the dependencies: NOT_SERVING while the database or NATS is
    // unreachable, SERVING again when both answer.
    let watcher = tokio::spawn(follow_dependencies(
        context.clone(),
        health_reporter.clone(),
        grpc.health_names.clone(),
        shutdown.clone(),
    ));

    let name = config.name.clone();
    tracing::info!(service = %name, %grpc_addr, %admin_addr, "serving");
    let server_task = tokio::spawn(server);
    let admin_task = tokio::spawn(admin_server.into_future());
    let stopping = shutdown.clone();
    let stopper = tokio::spawn(async move {
        stopping.cancelled().await;
        let _ = watcher.await;
        for name in std::iter::once("").chain(grpc.health_names.iter().copied()) {
            health_reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let served = server_task.await.context("grpc server task")?;
        let _ = admin_task.await;
        background_shutdown.cancel();
        for handle in handles {
            let _ = handle.await;
        }
        context.db.close().await;
        telemetry::shutdown();
        tracing::info!(service = %name, "stopped");
        served.context("grpc server")
    });
    Ok(RunningService {
        grpc_addr,
        admin_addr,
        shutdown: shutdown.drop_guard(),
        main: stopper,
    })
}

async fn metrics_page() -> String {
    crm_metrics::handle().render()
}

/// Ready when the database answers and NATS is connected.
async fn ready(context: &ServiceContext) -> Result<(), &'static str> {
    if !context.db.ping().await {
        return Err("database unreachable");
    }
    if context.nats.connection_state() != async_nats::connection::State::Connected {
        return Err("nats unreachable");
    }
    Ok(())
}

async fn readiness(State(context): State<ServiceContext>) -> (StatusCode, &'static str) {
    match ready(&context).await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// How often the gRPC health status is checked against the dependencies.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Sets the gRPC health status of every served service from [`ready`]
/// until `shutdown`.
async fn follow_dependencies(
    context: ServiceContext,
    reporter: tonic_health::server::HealthReporter,
    names: Vec<&'static str>,
    shutdown: Shutdown,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_INTERVAL) => {}
            _ = shutdown.cancelled() => return,
        }
        let now = ready(&context).await;
        if now.is_ok() == serving {
            continue;
        }
        serving = now.is_ok();
        let status = if serving {
            tracing::info!("dependencies answer again: serving");
            ServingStatus::Serving
        } else {
            tracing::warn!(reason = now.err().unwrap_or_default(), "not serving");
            ServingStatus::NotServing
        };
        for name in std::iter::once("").chain(names.iter().copied()) {
            reporter.set_service_status(name, status).await;
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending::<()>().await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Per-request span (child of the caller's `traceparent`), load shedding
/// beyond the concurrency limit, and request metrics.
#[derive(Clone)]
pub struct RequestLayer {
    permits: Arc<Semaphore>,
    /// `/<service>/<method>` of every method served: the only values the
    /// `method` metric label takes besides `reflection` and `unknown`, so
    /// callers cannot create series with made-up paths.
    methods: Arc<std::collections::HashSet<String>>,
}

impl RequestLayer {
    pub fn new(concurrency_limit: usize, services: &[&str]) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency_limit.max(1))),
            methods: Arc::new(served_methods(services)),
        }
    }
}

/// The gRPC paths of `services`' methods, from the contracts' descriptors.
fn served_methods(services: &[&str]) -> std::collections::HashSet<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(crm_proto::FILE_DESCRIPTOR_SET) else {
        return Default::default();
    };
    let mut paths = std::collections::HashSet::new();
    for file in &set.file {
        for service in &file.service {
            let name = format!("{}.{}", file.package(), service.name());
            if services.contains(&name.as_str()) {
                for method in &service.method {
                    paths.insert(format!("/{name}/{}", method.name()));
                }
            }
        }
    }
    paths
}

/// The `method` label of a request: bounded, whatever path a caller sends.
fn method_label(methods: &std::collections::HashSet<String>, path: &str) -> String {
    if methods.contains(path) {
        path.to_owned()
    } else if path.starts_with("/grpc.reflection.") {
        "reflection".to_owned()
    } else {
        "unknown".to_owned()
    }
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            permits: self.permits.clone(),
            methods: self.methods.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    permits: Arc<Semaphore>,
    methods: Arc<std::collections::HashSet<String>>,
}

impl<S, B> tower::Service<http::Request<B>> for RequestService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path();
        if path.starts_with("/grpc.health.") {
            return Box::pin(inner.call(request)); // probes: no shedding, no metrics
        }
        // Reflection stays open (grpcurl) but under the same limits.
        let method = method_label(&self.methods, path);
        let span = tracing::info_span!("grpc.request", rpc.method = %method, otel.kind = "server");
        if let Some(traceparent) = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            telemetry::set_remote_parent(&span, traceparent);
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            metrics::counter!("crm_grpc_shed_total").increment(1);
            return Box::pin(async {
                Ok(tonic::Status::unavailable("server overloaded, retry with backoff").into_http())
            });
        };
        let started = Instant::now();
        Box::pin(
            async move {
                let response = inner.call(request).await;
                drop(permit);
                let code = match &response {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "2".to_owned(),
                };
                let elapsed = started.elapsed().as_secs_f64();
                metrics::counter!("crm_grpc_requests_total", "method" => method.clone(), "code" => code).increment(1);
                metrics::histogram!("crm_grpc_request_duration_seconds", "method" => method).record(elapsed);
                response
            }
            .instrument(span),
        )
    }
}
