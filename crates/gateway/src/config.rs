//! Gateway configuration from `GATEWAY_*` (or shared) environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use kit::config::{ConfigError, DatabaseConfig, Env, NatsConfig};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub http_addr: SocketAddr,
    /// Prometheus `/metrics`, apart from the public port (`GATEWAY_ADMIN_ADDR`).
    pub admin_addr: SocketAddr,
    pub database: DatabaseConfig,
    /// gRPC endpoint of each domain service, by proto domain (`customers`
    /// for `crm.customers.v1`): `GATEWAY_<DOMAIN>_URL` for every domain the
    /// contracts declare. A domain without a URL answers 503.
    pub services: std::collections::BTreeMap<String, String>,
    /// SHA-256 of each service's client secret (`GATEWAY_<DOMAIN>_SECRET`,
    /// at least 32 characters), for the client-credentials grant at
    /// `/v1/auth/service-token`; a service without one gets no token.
    pub service_secrets: std::collections::BTreeMap<String, [u8; 32]>,
    /// Secret that authorises creating tenants and rotating keys (platform
    /// operators, not tenant admins). Unset disables those operations.
    pub bootstrap_token: Option<String>,
    /// Seals the token signing keys in the database
    /// (`GATEWAY_KEY_ENCRYPTION_KEY`, 32 bytes of base64; during a change
    /// `GATEWAY_PREVIOUS_KEY_ENCRYPTION_KEY` opens the keys it sealed).
    pub key_encryption: crate::sealing::KeyEncryptionKeys,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub otlp_endpoint: Option<String>,
    /// Deadline for calls to services.
    pub upstream_timeout: Duration,
    /// Requests per second each tenant may make (burst of the same size).
    pub tenant_rate_per_second: u32,
    /// Connections one client address may hold (`GATEWAY_MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// Logins one client address may try per minute (`GATEWAY_LOGIN_ATTEMPTS_PER_MINUTE`).
    pub login_attempts_per_minute: u32,
    /// Lead-capture form posts one client address may make per minute
    /// (`GATEWAY_FORM_POSTS_PER_MINUTE`).
    pub form_posts_per_minute: u32,
    /// Requests handled at once; beyond it the gateway sheds load (503).
    pub concurrency_limit: usize,
    /// Domain events arrive here for outbound webhooks.
    pub nats: NatsConfig,
    /// First webhook retry delay, doubled per attempt (capped at one hour).
    pub webhook_retry_base: Duration,
    /// Allows http:// webhook endpoints (development and tests only); the
    /// address checks of `webhook_egress` apply all the same.
    pub allow_insecure_webhooks: bool,
    /// Which addresses webhooks may reach: public ones, plus
    /// `GATEWAY_WEBHOOK_ALLOWED_NETWORKS`, minus
    /// `GATEWAY_WEBHOOK_DENIED_NETWORKS` (comma-separated CIDRs).
    pub webhook_egress: kit::egress::EgressPolicy,
    /// Browser origins allowed by CORS (`GATEWAY_CORS_ORIGINS`, comma
    /// separated); none by default.
    pub cors_origins: Vec<String>,
}

impl GatewayConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(Env::from_process("GATEWAY"))
    }

    pub fn parse(mut env: Env) -> Result<Self, ConfigError> {
        let http_addr = env.or(
            "HTTP_ADDR",
            "host:port",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        );
        let admin_addr = env.or(
            "ADMIN_ADDR",
            "host:port",
            SocketAddr::from(([0, 0, 0, 0], 9080)),
        );
        let url: Option<String> =
            env.required("DATABASE_URL", "a postgres:// URL for the runtime role");
        let migration_url = env.optional("MIGRATION_DATABASE_URL", "a postgres:// URL");
        let mut services = std::collections::BTreeMap::new();
        let mut service_secrets = std::collections::BTreeMap::new();
        for domain in crate::http::transcode::message::domains() {
            let name = format!("{}_URL", domain.to_ascii_uppercase());
            if let Some(url) = env.optional::<String>(&name, "an http:// URL") {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    env.problem(format!("GATEWAY_{name}: {url:?} is not an http:// URL"));
                }
                services.insert(domain.clone(), url);
            }
            let name = format!("{}_SECRET", domain.to_ascii_uppercase());
            if let Some(secret) =
                env.optional::<String>(&name, "a secret of at least 32 characters")
            {
                if secret.len() < 32 {
                    env.problem(format!("GATEWAY_{name} must be at least 32 characters"));
                }
                use sha2::Digest as _;
                service_secrets.insert(domain, sha2::Sha256::digest(secret.as_bytes()).into());
            }
        }
        let bootstrap_token: Option<String> =
            env.optional("BOOTSTRAP_TOKEN", "a secret of at least 16 characters");
        if bootstrap_token.as_ref().is_some_and(|t| t.len() < 16) {
            env.problem("GATEWAY_BOOTSTRAP_TOKEN must be at least 16 characters");
        }
        let mut kek = |name: &str, required: bool| {
            let text: Option<String> = if required {
                env.required(
                    name,
                    "32 bytes of base64, e.g. from `openssl rand -base64 32`",
                )
            } else {
                env.optional(name, "32 bytes of base64")
            };
            text.and_then(|text| {
                crate::sealing::KeyEncryptionKey::from_base64(&text)
                    .map_err(|why| env.problem(format!("GATEWAY_{name} {why}")))
                    .ok()
            })
        };
        let current_kek = kek("KEY_ENCRYPTION_KEY", true);
        let previous_kek = kek("PREVIOUS_KEY_ENCRYPTION_KEY", false);
        let issuer = env.or("CRM_JWT_ISSUER", "a string", "crm-gateway".to_owned());
        let audience = env.or("CRM_JWT_AUDIENCE", "a string", "crm".to_owned());
        let access_ttl = env.millis("ACCESS_TOKEN_TTL_MS", Duration::from_secs(900));
        let refresh_ttl = env.millis("REFRESH_TOKEN_TTL_MS", Duration::from_secs(30 * 24 * 3600));
        let upstream_timeout = env.millis("UPSTREAM_TIMEOUT_MS", Duration::from_secs(5));
        let otlp_endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT", "a URL");
        let tenant_rate_per_second =
            env.or("TENANT_RATE_PER_SECOND", "a whole number above 0", 200u32);
        if tenant_rate_per_second == 0 {
            env.problem("GATEWAY_TENANT_RATE_PER_SECOND must be above 0");
        }
        let login_attempts_per_minute =
            env.or("LOGIN_ATTEMPTS_PER_MINUTE", "a whole number above 0", 20u32);
        if login_attempts_per_minute == 0 {
            env.problem("GATEWAY_LOGIN_ATTEMPTS_PER_MINUTE must be above 0");
        }
        let form_posts_per_minute =
            env.or("FORM_POSTS_PER_MINUTE", "a whole number above 0", 10u32);
        if form_posts_per_minute == 0 {
            env.problem("GATEWAY_FORM_POSTS_PER_MINUTE must be above 0");
        }
        let max_connections_per_ip =
            env.or("MAX_CONNECTIONS_PER_IP", "a whole number above 0", 256usize);
        let concurrency_limit = env.or("CONCURRENCY_LIMIT", "a whole number", 1024usize);
        let nats = NatsConfig::parse(&mut env);
        let webhook_retry_base = env.millis("WEBHOOK_RETRY_BASE_MS", Duration::from_secs(5));
        let allow_insecure_webhooks = env.or("ALLOW_INSECURE_WEBHOOKS", "true or false", false);
        let webhook_egress = kit::egress::EgressPolicy::from_env(&mut env);
        let cors_origins: Vec<String> = env
            .or("CORS_ORIGINS", "comma-separated origins", String::new())
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        for origin in &cors_origins {
            if !(origin.starts_with("https://") || origin.starts_with("http://")) {
                env.problem(format!("GATEWAY_CORS_ORIGINS: {origin:?} is not an origin such as https://app.example.com"));
            }
        }
        env.finish()?;
        let Some(nats) = nats else {
            unreachable!("required variables are checked by Env::finish")
        };
        let Some(url) = url else {
            unreachable!("required variables are checked by Env::finish")
        };
        let Some(current_kek) = current_kek else {
            unreachable!("required variables are checked by Env::finish")
        };
        Ok(GatewayConfig {
            http_addr,
            admin_addr,
            database: DatabaseConfig {
                url,
                migration_url,
                max_connections: 20,
            },
            services,
            service_secrets,
            bootstrap_token,
            key_encryption: crate::sealing::KeyEncryptionKeys {
                current: current_kek,
                previous: previous_kek,
            },
            issuer,
            audience,
            access_ttl,
            refresh_ttl,
            otlp_endpoint,
            upstream_timeout,
            tenant_rate_per_second,
            login_attempts_per_minute,
            form_posts_per_minute,
            max_connections_per_ip: max_connections_per_ip.max(1),
            concurrency_limit,
            nats,
            webhook_retry_base,
            allow_insecure_webhooks,
            webhook_egress,
            cors_origins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        let mut vars: std::collections::HashMap<String, String> = [
            ("GATEWAY_DATABASE_URL", "postgres://app@db/gateway"),
            ("NATS_URL", "nats://127.0.0.1:4222"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.retain(|_, v| !v.is_empty());
        GatewayConfig::parse(Env::new("GATEWAY", vars))
    }

    #[test]
    fn the_key_encryption_key_is_required_and_checked_without_printing_it() {
        let missing = parse(&[]).unwrap_err().to_string();
        assert!(missing.contains("KEY_ENCRYPTION_KEY"), "{missing}");
        let short = parse(&[("GATEWAY_KEY_ENCRYPTION_KEY", "c2hvcnQta2V5")])
            .unwrap_err()
            .to_string();
        assert!(
            short.contains("GATEWAY_KEY_ENCRYPTION_KEY is 9 bytes; it must be 32"),
            "{short}"
        );
        assert!(!short.contains("c2hvcnQta2V5"), "{short}");
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let config = parse(&[("GATEWAY_KEY_ENCRYPTION_KEY", key)]).unwrap();
        assert!(config.key_encryption.previous.is_none());
        assert!(!format!("{config:?}").contains(key));
    }
}
