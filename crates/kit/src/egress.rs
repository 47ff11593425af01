//! Where a service may connect on a tenant's behalf (the gateway's
//! webhooks, marketing's webhook actions): public internet addresses only,
//! so a tenant cannot make a service reach the cluster, the cloud metadata
//! service or the machine itself (SSRF).
//!
//! A URL is checked when it is registered and again at every delivery,
//! and the delivery connects only to addresses that passed the check: the
//! HTTP client resolves names through [`EgressResolver`], which drops
//! forbidden addresses, so a DNS answer that changes between the check and
//! the connection (rebinding) cannot slip through. Operators may allow
//! internal networks (`<SERVICE>_WEBHOOK_ALLOWED_NETWORKS`) and forbid more
//! (`<SERVICE>_WEBHOOK_DENIED_NETWORKS`, e.g. the cluster's pod and service
//! ranges when they are public addresses). The development switch that
//! allows `http://` does not lift any of this.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

use crate::config::Env;

#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Networks allowed even though they are not public (checked first).
    pub allowed: Vec<IpNet>,
    /// Networks refused even though they are public.
    pub denied: Vec<IpNet>,
}

impl EgressPolicy {
    /// `WEBHOOK_ALLOWED_NETWORKS` and `WEBHOOK_DENIED_NETWORKS` of the
    /// service's environment: comma-separated CIDRs.
    pub fn from_env(env: &mut Env) -> Self {
        EgressPolicy {
            allowed: networks(env, "WEBHOOK_ALLOWED_NETWORKS"),
            denied: networks(env, "WEBHOOK_DENIED_NETWORKS"),
        }
    }

    /// An HTTP client that connects only where this policy permits and
    /// follows no redirect: the connection goes where the check said it
    /// may.
    pub fn client(self: &Arc<Self>, timeout: Duration) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(EgressResolver(self.clone())))
            .build()
    }
    /// Whether the gateway may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return true;
        }
        !self.denied.iter().any(|net| net.contains(&ip)) && is_public(ip)
    }

    /// The permitted addresses of `host` (a name or an IP literal); an
    /// error saying why when there are none. Any forbidden address among
    /// the answers refuses the host: a name that points inside is not a
    /// webhook target, whichever of its addresses a client would pick.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| format!("host {host:?} does not resolve"))?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("host {host:?} does not resolve"));
        }
        if let Some(refused) = addresses.iter().find(|a| !self.permits(a.ip())) {
            return Err(format!(
                "host {host:?} is at {}, which is not a public internet address",
                refused.ip()
            ));
        }
        Ok(addresses)
    }

    /// Checks a webhook URL: it parses, has a host, and every address the
    /// host resolves to is permitted.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|_| "is not a valid URL".to_owned())?;
        let host = parsed.host_str().ok_or_else(|| "has no host".to_owned())?;
        let port = parsed
            .port_or_known_default()
            .ok_or_else(|| "has no port".to_owned())?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not carry credentials".into());
        }
        self.resolve(host, port).await.map(|_| ())
    }
}

fn networks(env: &mut Env, name: &str) -> Vec<IpNet> {
    let raw = env.or(name, "comma-separated networks (CIDR)", String::new());
    let mut parsed = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        match item.parse() {
            Ok(net) => parsed.push(net),
            Err(_) => env.problem(format!(
                "{}: {item:?} is not a network such as 10.0.0.0/8",
                env.name(name)
            )),
        }
    }
    parsed
}

/// The `Crm-Signature` header of a webhook body: `t=<unix seconds>,v1=<hex
/// HMAC-SHA256 of "<t>.<body>" keyed with the endpoint's secret>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The name resolver of the webhook HTTP client: only permitted addresses
/// are ever handed to the connector.
pub struct EgressResolver(pub Arc<EgressPolicy>);

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            // The connector sets the URL's port on each address.
            let addresses = policy.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are judged as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, the cloud metadata service
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18/15
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site local fec0::/10
        || first == 0x2002 // 6to4: embeds any IPv4 address
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64: embeds IPv4
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.to_ipv4().is_some()) // IPv4-compatible ::a.b.c.d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permits(policy: &EgressPolicy, ip: &str) -> bool {
        policy.permits(ip.parse().unwrap())
    }

    #[test]
    fn only_public_addresses_are_permitted_by_default() {
        let policy = EgressPolicy::default();
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2002:7f00:1::",
            "64:ff9b::a00:1",
        ] {
            assert!(!permits(&policy, inside), "{inside} must be refused");
        }
        for outside in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(permits(&policy, outside), "{outside} must be permitted");
        }
    }

    #[test]
    fn operators_allow_internal_networks_and_deny_public_ones() {
        let policy = EgressPolicy {
            allowed: vec!["10.20.0.0/16".parse().unwrap()],
            denied: vec!["1.1.1.0/24".parse().unwrap()],
        };
        assert!(permits(&policy, "10.20.3.4"));
        assert!(!permits(&policy, "10.21.3.4"));
        assert!(!permits(&policy, "1.1.1.1"));
        assert!(permits(&policy, "8.8.8.8"));
    }

    #[tokio::test]
    async fn urls_naming_or_resolving_inside_are_refused() {
        let policy = EgressPolicy::default();
        for url in [
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://[::ffff:a00:1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:8443/hook",
            "https://2130706433/hook", // 127.0.0.1 written as one number
            "https://user:secret@93.184.216.34/hook",
        ] {
            assert!(
                policy.check_url(url).await.is_err(),
                "{url} must be refused"
            );
        }
        assert!(policy.check_url("https://93.184.216.34/hook").await.is_ok());
    }
}
