//! Prometheus metrics: one recorder per process, rendered on the admin port.
//!
//! Names follow Prometheus conventions: `crm_grpc_requests_total`,
//! `crm_grpc_request_duration_seconds`, `crm_outbox_published_total`, ...

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder on first use and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; ours then
            // renders empty, which is visible and harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
