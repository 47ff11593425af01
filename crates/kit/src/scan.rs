//! Scheduled scans (task reminders, overdue invoices, score decay, ...):
//! one loop for all of them. A scan's step locks a batch of due rows with
//! `FOR UPDATE SKIP LOCKED` and handles them in one transaction, so several
//! pods share the work and each row is handled once; the loop only decides
//! when to step again: at once while full batches come back, after the
//! scan's interval otherwise, or after a failure (logged, retried).

use std::future::Future;
use std::time::Duration;

use crate::Shutdown;

/// Rows a step takes at most; a full batch means more are probably due.
pub const BATCH: usize = 100;

/// One scheduled scan.
pub trait Scan: Send + Sync + 'static {
    /// For logs: `overdue invoices`.
    const NAME: &'static str;

    /// Handles up to [`BATCH`] due rows in one transaction; returns how many.
    /// Tests call it directly instead of waiting for the loop.
    fn try_once(&self) -> impl Future<Output = anyhow::Result<usize>> + Send;

    /// Pause between steps when nothing more is due.
    fn interval(&self) -> Duration;
}

/// Steps `scan` until shutdown.
pub async fn run<S: Scan>(scan: S, shutdown: Shutdown) {
    while !shutdown.is_cancelled() {
        let pause = match scan.try_once().await {
            Ok(handled) if handled >= BATCH => Duration::ZERO,
            Ok(_) => scan.interval(),
            Err(error) => {
                tracing::warn!(scan = S::NAME, error = format!("{error:#}"), "scan failed");
                scan.interval()
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
