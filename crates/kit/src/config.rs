//! Configuration from environment variables (12-factor).
//!
//! Parsing reads from a plain map so it is unit-testable; [`Env::from_process`]
//! fills that map from the process environment. A service-specific variable
//! `<SERVICE>_<NAME>` wins over the shared `<NAME>` (so one shell can run all
//! services with one `NATS_URL` but a `CUSTOMERS_DATABASE_URL` each). Every
//! missing or malformed variable is reported at once, by name, before any port
//! is bound.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Exit code for invalid configuration (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// All problems found in the configuration, each naming its variable.
#[derive(Debug, Default)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A view of environment variables for one service.
pub struct Env {
    service_prefix: String,
    vars: HashMap<String, String>,
    errors: ConfigError,
}

impl Env {
    /// `service` is the upper-case prefix of service-specific variables,
    /// for example `CUSTOMERS`.
    pub fn new(service: &str, vars: HashMap<String, String>) -> Self {
        Self {
            service_prefix: service.to_ascii_uppercase(),
            vars,
            errors: ConfigError::default(),
        }
    }

    pub fn from_process(service: &str) -> Self {
        Self::new(service, std::env::vars().collect())
    }

    /// The value of `<SERVICE>_<name>`, else of `<name>`. Each may instead
    /// be given as `..._FILE`, the path of a file holding the value
    /// (secrets mounted as files by Kubernetes or Docker, so they need not
    /// sit in the environment); a value set directly wins.
    fn lookup(&mut self, name: &str) -> Option<(String, String)> {
        for key in [format!("{}_{}", self.service_prefix, name), name.to_owned()] {
            if let Some(value) = self.vars.get(&key).filter(|v| !v.is_empty()) {
                return Some((key, value.clone()));
            }
            let file_key = format!("{key}_FILE");
            if let Some(path) = self.vars.get(&file_key).filter(|v| !v.is_empty()) {
                return match std::fs::read_to_string(path) {
                    Ok(text) => Some((file_key, text.trim_end_matches(['\n', '\r']).to_owned())),
                    Err(error) => {
                        let problem = format!("{file_key}: cannot read {path}: {error}");
                        self.errors.problems.push(problem);
                        None
                    }
                };
            }
        }
        None
    }

    /// A required variable; records a problem if missing or malformed.
    pub fn required<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        match self.lookup(name) {
            None => {
                self.errors.problems.push(format!(
                    "{name} (or {}_{name}) is not set: expected {expected}",
                    self.service_prefix
                ));
                None
            }
            Some((key, raw)) => match raw.parse() {
                Ok(value) => Some(value),
                Err(_) => {
                    self.errors
                        .problems
                        .push(format!("{key}={raw:?} is malformed: expected {expected}"));
                    None
                }
            },
        }
    }

    /// An optional variable; `None` when unset, a problem when malformed.
    pub fn optional<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        let (key, raw) = self.lookup(name)?;
        match raw.parse() {
            Ok(value) => Some(value),
            Err(_) => {
                self.errors
                    .problems
                    .push(format!("{key}={raw:?} is malformed: expected {expected}"));
                None
            }
        }
    }

    /// An optional variable with a default.
    pub fn or<T: FromStr>(&mut self, name: &str, expected: &str, default: T) -> T {
        self.optional(name, expected).unwrap_or(default)
    }

    /// A duration given in milliseconds.
    pub fn millis(&mut self, name: &str, default: Duration) -> Duration {
        self.optional::<u64>(name, "a whole number of milliseconds")
            .map(Duration::from_millis)
            .unwrap_or(default)
    }

    /// The service's own name for a variable: `<SERVICE>_<name>`.
    pub fn name(&self, name: &str) -> String {
        format!("{}_{name}", self.service_prefix)
    }

    pub fn problem(&mut self, problem: impl Into<String>) {
        self.errors.problems.push(problem.into());
    }

    /// Ends parsing: `Err` with every problem found, if any.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.problems.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// How the service's database is reached.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Runtime role: not the owner, not superuser, not BYPASSRLS.
    pub url: String,
    /// Owner role that runs migrations at start; when unset, migrations are
    /// expected to have been run by a deployment job.
    pub migration_url: Option<String>,
    pub max_connections: u32,
}

/// How the service reaches NATS and names its streams.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    /// Prefix for subjects and stream names; empty in production, unique per
    /// test so tests can share one server.
    pub prefix: String,
    pub stream_replicas: usize,
    pub duplicate_window: Duration,
    /// How long domain streams keep events (`CRM_STREAM_MAX_AGE_DAYS`, 30):
    /// the bound on how long an erased person's data stays in event history.
    pub max_age: Duration,
}

impl NatsConfig {
    /// Reads `NATS_URL`, `CRM_NATS_PREFIX`, `CRM_STREAM_REPLICAS`,
    /// `CRM_DUPLICATE_WINDOW_MS` and `CRM_STREAM_MAX_AGE_DAYS`; `None` when
    /// the URL is missing (a problem `env` reports).
    pub fn parse(env: &mut Env) -> Option<Self> {
        let url: Option<String> = env.required("NATS_URL", "a nats:// URL");
        let prefix = env.or("CRM_NATS_PREFIX", "a subject token", String::new());
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            env.problem("CRM_NATS_PREFIX may hold only letters, digits, '-' and '_'");
        }
        let stream_replicas = env.or("CRM_STREAM_REPLICAS", "1, 3 or 5", 1usize);
        let duplicate_window = env.millis("CRM_DUPLICATE_WINDOW_MS", Duration::from_secs(600));
        let max_age_days = env.or(
            "CRM_STREAM_MAX_AGE_DAYS",
            "a whole number of days above 0",
            30u64,
        );
        if max_age_days == 0 {
            env.problem("CRM_STREAM_MAX_AGE_DAYS must be above 0");
        }
        Some(NatsConfig {
            url: url?,
            prefix,
            stream_replicas,
            duplicate_window,
            max_age: Duration::from_secs(max_age_days.max(1) * 24 * 3600),
        })
    }
}

/// Where signing keys of access tokens come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `CRM_JWKS_URL`: fetched and cached, re-fetched on an unknown key id.
    JwksUrl(String),
    /// `CRM_JWT_PUBLIC_KEY`: one PEM public key (Ed25519 or P-256).
    PublicKeyPem(String),
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub keys: KeySource,
    pub issuer: String,
    pub audience: String,
}

/// Everything the platform needs to run one service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Service name, used for logs, traces, event `source` and consumer names.
    pub name: String,
    pub grpc_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub auth: AuthConfig,
    pub request_timeout: Duration,
    pub concurrency_limit: usize,
    pub otlp_endpoint: Option<String>,
}

impl ServiceConfig {
    /// Reads the configuration of `service` (lower case, e.g. `customers`),
    /// with its default gRPC and admin ports.
    pub fn from_env(service: &str, default_grpc_port: u16) -> Result<Self, ConfigError> {
        Self::parse(Env::from_process(service), service, default_grpc_port)
    }

    pub fn parse(mut env: Env, service: &str, default_grpc_port: u16) -> Result<Self, ConfigError> {
        let grpc_addr = env.or(
            "GRPC_ADDR",
            "host:port",
            SocketAddr::from(([0, 0, 0, 0], default_grpc_port)),
        );
        let admin_addr = env.or(
            "ADMIN_ADDR",
            "host:port",
            SocketAddr::from(([0, 0, 0, 0], default_grpc_port + 1000)),
        );
        let url: Option<String> =
            env.required("DATABASE_URL", "a postgres:// URL for the runtime role");
        let migration_url: Option<String> =
            env.optional("MIGRATION_DATABASE_URL", "a postgres:// URL");
        for (name, value) in [
            ("DATABASE_URL", &url),
            ("MIGRATION_DATABASE_URL", &migration_url),
        ] {
            if let Some(value) = value {
                if !(value.starts_with("postgres://") || value.starts_with("postgresql://")) {
                    env.problem(format!(
                        "{name} must start with postgres:// (got another scheme)"
                    ));
                }
            }
        }
        let max_connections = env.or("DATABASE_MAX_CONNECTIONS", "a whole number", 20u32);
        let nats = NatsConfig::parse(&mut env);
        let jwks_url: Option<String> = env.optional("CRM_JWKS_URL", "an http(s):// URL");
        let public_key: Option<String> = env.optional("CRM_JWT_PUBLIC_KEY", "a PEM public key");
        let keys = match (jwks_url, public_key) {
            (Some(url), _) => Some(KeySource::JwksUrl(url)),
            (None, Some(pem)) => Some(KeySource::PublicKeyPem(pem)),
            (None, None) => {
                env.problem("CRM_JWKS_URL or CRM_JWT_PUBLIC_KEY must be set: services verify every caller's token");
                None
            }
        };
        let issuer = env.or("CRM_JWT_ISSUER", "a string", "crm-gateway".to_owned());
        let audience = env.or("CRM_JWT_AUDIENCE", "a string", "crm".to_owned());
        let request_timeout = env.millis("REQUEST_TIMEOUT_MS", Duration::from_secs(10));
        let concurrency_limit = env.or("CONCURRENCY_LIMIT", "a whole number", 512usize);
        let otlp_endpoint = env.optional("OTEL_EXPORTER_OTLP_ENDPOINT", "a URL");
        env.finish()?;
        // finish() returned Ok, so every required value above is present.
        let (Some(url), Some(nats), Some(keys)) = (url, nats, keys) else {
            unreachable!("required variables are checked by Env::finish")
        };
        Ok(ServiceConfig {
            name: service.to_owned(),
            grpc_addr,
            admin_addr,
            database: DatabaseConfig {
                url,
                migration_url,
                max_connections,
            },
            nats,
            auth: AuthConfig {
                keys,
                issuer,
                audience,
            },
            request_timeout,
            concurrency_limit,
            otlp_endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::new(
            "customers",
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn names_every_missing_variable() {
        let error = ServiceConfig::parse(env(&[]), "customers", 50051).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("DATABASE_URL"), "{text}");
        assert!(text.contains("NATS_URL"), "{text}");
        assert!(text.contains("CRM_JWKS_URL"), "{text}");
        assert_eq!(error.problems.len(), 3);
    }

    #[test]
    fn names_malformed_variables() {
        let error = ServiceConfig::parse(
            env(&[
                ("DATABASE_URL", "mysql://x"),
                ("NATS_URL", "nats://127.0.0.1:4222"),
                ("CRM_JWKS_URL", "http://gw/.well-known/jwks.json"),
                ("CUSTOMERS_GRPC_ADDR", "not-an-address"),
            ]),
            "customers",
            50051,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("CUSTOMERS_GRPC_ADDR=\"not-an-address\""),
            "{text}"
        );
        assert!(
            text.contains("DATABASE_URL must start with postgres://"),
            "{text}"
        );
    }

    #[test]
    fn secrets_are_read_from_files_named_by_file_variables() {
        let dir = std::env::temp_dir().join(format!("crm-config-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = dir.join("url");
        std::fs::write(&url, "postgres://from-file/db\n").unwrap();
        let path = url.to_string_lossy().into_owned();
        let config = ServiceConfig::parse(
            env(&[
                ("CUSTOMERS_DATABASE_URL_FILE", &path),
                ("NATS_URL", "nats://127.0.0.1:4222"),
                ("CRM_JWT_PUBLIC_KEY", "pem"),
                // Other programs' `_FILE` variables are none of our business.
                ("TF_CLI_CONFIG_FILE", "/nonexistent/terraformrc"),
            ]),
            "customers",
            50051,
        )
        .unwrap();
        assert_eq!(config.database.url, "postgres://from-file/db");
        let missing = ServiceConfig::parse(
            env(&[
                ("CUSTOMERS_DATABASE_URL_FILE", "/nonexistent/crm/url"),
                ("NATS_URL", "nats://127.0.0.1:4222"),
                ("CRM_JWT_PUBLIC_KEY", "pem"),
            ]),
            "customers",
            50051,
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("CUSTOMERS_DATABASE_URL_FILE: cannot read /nonexistent/crm/url"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn service_specific_variable_wins() {
        let config = ServiceConfig::parse(
            env(&[
                ("DATABASE_URL", "postgres://shared/db"),
                ("CUSTOMERS_DATABASE_URL", "postgres://customers/db"),
                ("NATS_URL", "nats://127.0.0.1:4222"),
                ("CRM_JWT_PUBLIC_KEY", "pem"),
            ]),
            "customers",
            50051,
        )
        .unwrap();
        assert_eq!(config.database.url, "postgres://customers/db");
        assert_eq!(config.grpc_addr.port(), 50051);
        assert_eq!(config.admin_addr.port(), 51051);
    }
}
