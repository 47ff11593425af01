//! gRPC channels that spread calls over every address a service name
//! resolves to. A headless Kubernetes Service resolves to one address per
//! pod; one HTTP/2 connection to whichever address came first would pin
//! every call to that pod. The channel re-resolves the name periodically,
//! so pods that scale up get traffic and pods that go away are dropped.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How often a service name is resolved again.
pub const REFRESH: Duration = Duration::from_secs(15);

/// A channel to `url` (`http://host:port`) balanced over the addresses
/// `host` resolves to, refreshed every [`REFRESH`].
pub fn channel(url: &str, connect_timeout: Duration) -> anyhow::Result<Channel> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL"))?;
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let host = uri
        .host()
        .with_context(|| format!("{url:?} has no host"))?
        .trim_matches(|c| c == '[' || c == ']')
        .to_owned();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let resolve = move || {
        let host = host.clone();
        async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        }
    };
    Ok(channel_with(resolve, &scheme, connect_timeout, REFRESH))
}

/// The same with a given resolver and refresh interval (tests).
pub fn channel_with<R, F>(
    resolve: R,
    scheme: &str,
    connect_timeout: Duration,
    refresh: Duration,
) -> Channel
where
    R: Fn() -> F + Send + 'static,
    F: Future<Output = std::io::Result<Vec<SocketAddr>>> + Send,
{
    let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
    let scheme = scheme.to_owned();
    tokio::spawn(async move {
        let mut current: HashSet<SocketAddr> = HashSet::new();
        loop {
            match resolve().await {
                // An empty or failed answer keeps the addresses known so far:
                // a DNS hiccup must not take every endpoint away.
                Ok(addresses) if !addresses.is_empty() => {
                    let fresh: HashSet<SocketAddr> = addresses.into_iter().collect();
                    for gone in current.difference(&fresh) {
                        if changes.send(Change::Remove(*gone)).await.is_err() {
                            return;
                        }
                    }
                    for new in fresh.difference(&current) {
                        let endpoint = match Endpoint::from_shared(format!("{scheme}://{new}")) {
                            Ok(endpoint) => {
                                endpoint.connect_timeout(connect_timeout).tcp_nodelay(true)
                            }
                            Err(error) => {
                                tracing::warn!(%error, address = %new, "unusable address");
                                continue;
                            }
                        };
                        if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                            return;
                        }
                    }
                    current = fresh;
                }
                Ok(_) => tracing::warn!("service name resolved to no address"),
                Err(error) => tracing::warn!(%error, "resolving a service name failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(refresh) => {}
                // Every clone of the channel is gone.
                _ = changes.closed() => return,
            }
        }
    });
    channel
}
