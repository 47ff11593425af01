//! Configuration of the service desk: the platform settings read from
//! `SERVICEDESK_*` (or shared) environment variables, plus where the
//! customers service answers. Default gRPC port 50054, admin port 51054.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "servicedesk";
pub const DEFAULT_GRPC_PORT: u16 = 50054;

#[derive(Debug, Clone)]
pub struct ServiceDeskConfig {
    pub service: ServiceConfig,
    /// gRPC endpoint of the customers service (requesters and accounts,
    /// checked with the caller's rights).
    pub customers_url: String,
    /// What SLA clocks read the time from (a manual clock in tests).
    pub clock: kit::clock::Clock,
    /// Pause of the SLA scanner when no alarm is due.
    pub sla_scan_interval: Duration,
    /// Where inbound support mail arrives (`SERVICEDESK_SMTP_LISTEN`,
    /// bound when the settings are read); none: no inbound e-mail.
    pub smtp_listener: Option<Arc<TcpListener>>,
    /// The relay replies go out through (`SERVICEDESK_SMTP_URL`: smtp://,
    /// smtps:// or file:// for a folder of .eml files); none: replies are
    /// not mailed.
    pub smtp_url: Option<String>,
    /// Pause of the mail sender when nothing is due.
    pub mail_send_interval: Duration,
    /// Inbound messages taken per minute from one sending address and for
    /// one tenant (`SERVICEDESK_SMTP_MESSAGES_PER_MINUTE`); beyond it the
    /// sender is told to try again later (451), so nothing is lost and a
    /// flood neither fills a tenant's desk nor starves the others.
    pub smtp_messages_per_minute: u32,
    /// Signs satisfaction survey links (`SERVICEDESK_LINK_KEY`, base64 of
    /// at least 32 bytes); none: no surveys are sent.
    pub link_key: Option<kit::links::LinkKey>,
    /// Where people reach the gateway's public routes
    /// (`SERVICEDESK_PUBLIC_URL`): survey links point there.
    pub public_url: String,
    /// How the desk obtains a token to act by itself (mail in: the
    /// requester looked up or created in customers): `CRM_SERVICE_TOKEN_URL`
    /// and `CRM_SERVICE_SECRET`.
    pub service_tokens: Arc<kit::service_tokens::ServiceTokens>,
}

impl ServiceDeskConfig {
    /// Settings with the defaults of everything but where to serve and
    /// where customers answers.
    pub fn new(service: ServiceConfig, customers_url: String) -> Self {
        ServiceDeskConfig {
            service,
            customers_url,
            clock: kit::clock::Clock::system(),
            sla_scan_interval: DEFAULT_SLA_SCAN_INTERVAL,
            smtp_listener: None,
            smtp_url: None,
            mail_send_interval: DEFAULT_MAIL_SEND_INTERVAL,
            smtp_messages_per_minute: DEFAULT_SMTP_MESSAGES_PER_MINUTE,
            link_key: None,
            public_url: "http://127.0.0.1:8080".into(),
            service_tokens: Arc::default(),
        }
    }
}

const DEFAULT_SLA_SCAN_INTERVAL: Duration = Duration::from_secs(15);
const DEFAULT_MAIL_SEND_INTERVAL: Duration = Duration::from_secs(2);
/// A busy desk's relay forwards a few messages a second at most.
const DEFAULT_SMTP_MESSAGES_PER_MINUTE: u32 = 300;

pub fn from_env() -> Result<ServiceDeskConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    let sla_scan_interval = env.millis("SLA_SCAN_INTERVAL_MS", DEFAULT_SLA_SCAN_INTERVAL);
    let smtp_listen: Option<SocketAddr> =
        env.optional("SMTP_LISTEN", "an address such as 0.0.0.0:2525");
    let smtp_listener = smtp_listen.and_then(|addr| match TcpListener::bind(addr) {
        Ok(listener) => Some(Arc::new(listener)),
        Err(error) => {
            env.problem(format!(
                "SERVICEDESK_SMTP_LISTEN: cannot listen on {addr}: {error}"
            ));
            None
        }
    });
    let smtp_url = env.optional("SMTP_URL", "an smtp://, smtps:// or file:// URL");
    let mail_send_interval = env.millis("MAIL_SEND_INTERVAL_MS", DEFAULT_MAIL_SEND_INTERVAL);
    let smtp_messages_per_minute: u32 = env.or(
        "SMTP_MESSAGES_PER_MINUTE",
        "a number of messages from 1",
        DEFAULT_SMTP_MESSAGES_PER_MINUTE,
    );
    if smtp_messages_per_minute == 0 {
        env.problem("SERVICEDESK_SMTP_MESSAGES_PER_MINUTE must be at least 1".to_owned());
    }
    let link_key = env
        .optional::<String>("LINK_KEY", "base64 of at least 32 bytes")
        .and_then(|encoded| match kit::links::LinkKey::from_base64(&encoded) {
            Ok(key) => Some(key),
            Err(problem) => {
                env.problem(format!("SERVICEDESK_LINK_KEY {problem}"));
                None
            }
        });
    let public_url: String = env.or(
        "PUBLIC_URL",
        "an http(s):// URL",
        "http://127.0.0.1:8080".to_owned(),
    );
    let service_tokens = Arc::new(kit::service_tokens::ServiceTokens::parse(&mut env));
    env.finish()?;
    Ok(ServiceDeskConfig {
        sla_scan_interval,
        smtp_listener,
        smtp_url,
        mail_send_interval,
        smtp_messages_per_minute,
        link_key,
        public_url: public_url.trim_end_matches('/').to_owned(),
        service_tokens,
        ..ServiceDeskConfig::new(service, customers_url)
    })
}
