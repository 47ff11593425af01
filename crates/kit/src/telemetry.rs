//! Logs and traces.
//!
//! Logs are JSON lines on stdout (one object per event, lower-case messages,
//! fields as keys). Spans always carry OpenTelemetry trace ids; when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set they are also exported over OTLP/gRPC.
//! W3C trace context crosses process boundaries in gRPC metadata and NATS
//! message headers (`traceparent`), so one trace spans gateway -> service ->
//! event -> consumer.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Installs logging and tracing once per process. Later calls (several
/// services in one test process) are no-ops.
pub fn init(service: &str, otlp_endpoint: Option<&str>) {
    if PROVIDER.get().is_some() {
        return;
    }
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(format!("crm-{service}"))
            .build(),
    );
    if let Some(endpoint) = otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => {
                eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: exporter not started: {error}")
            }
        }
    }
    let provider = builder.build();
    let tracer = provider.tracer("crm");
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // RUST_LOG filters what is logged, not which spans exist: trace context
    // must reach events and downstream services even when logs are quiet.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn"));
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_filter(filter);
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("kit", tracing::Level::INFO),
        );
    let initialised = tracing_subscriber::registry()
        .with(json)
        .with(traces)
        .try_init()
        .is_ok();
    if initialised {
        let _ = PROVIDER.set(provider);
    }
}

/// Flushes spans not yet exported; called at shutdown.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.force_flush();
    }
}

/// The W3C `traceparent` of the current span, or empty when there is none.
pub fn current_traceparent() -> String {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the remote span named by `traceparent`.
pub fn set_remote_parent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// Adds the current span's `traceparent` to an outgoing gRPC request, so the
/// called service continues this trace.
pub fn inject_traceparent<T>(request: &mut tonic::Request<T>) {
    let traceparent = current_traceparent();
    if let Ok(value) = traceparent.parse() {
        if !traceparent.is_empty() {
            request.metadata_mut().insert("traceparent", value);
        }
    }
}
