//! The gateway's HTTP server: hyper with the limits a public endpoint needs
//! and `axum::serve` does not offer. A client must send its request headers
//! within [`HEADER_TIMEOUT`] (slowloris connections are closed, not kept
//! until the concurrency slots run out), and one address may hold at most
//! `max_connections_per_ip` connections; a body that stalls longer than
//! [`BODY_IDLE_TIMEOUT`] fails its request. Each request carries the
//! client's address as `ConnectInfo` (per-IP login budgets).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kit::Shutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may stall between two chunks (an idle timeout,
/// so long streaming imports keep working while they move).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN: Duration = Duration::from_secs(20);

/// Connections open per client address.
#[derive(Clone, Default)]
struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection, counted until dropped.
struct Counted(Connections, IpAddr);

impl Connections {
    fn open(&self, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Counted(self.clone(), ip))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = (self.0)
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    max_connections_per_ip: usize,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30));
    let graceful = GracefulShutdown::new();
    let connections = Connections::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, don't die.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(counted) = connections.open(peer.ip(), max_connections_per_ip) else {
            metrics::counter!("crm_gateway_connections_refused_total").increment(1);
            continue; // dropped: closed at once
        };
        // A response in two writes must not wait for a delayed ACK.
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request.map(|body| {
                    axum::body::Body::new(tower_http::timeout::TimeoutBody::new(
                        BODY_IDLE_TIMEOUT,
                        body,
                    ))
                })
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_connections_until_one_closes() {
        let connections = Connections::default();
        let ip = IpAddr::from([192, 0, 2, 7]);
        let first = connections.open(ip, 2).unwrap();
        let _second = connections.open(ip, 2).unwrap();
        assert!(connections.open(ip, 2).is_none());
        assert!(connections.open(IpAddr::from([192, 0, 2, 8]), 2).is_some());
        drop(first);
        assert!(connections.open(ip, 2).is_some());
    }
}
