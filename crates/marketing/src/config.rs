//! Configuration of the marketing service: the platform settings read from
//! `MARKETING_*` (or shared) environment variables, where the customers
//! service answers, the mail relay and the sending pace. Default gRPC
//! port 50053, admin port 51053.

use std::time::Duration;

use kit::config::{ConfigError, Env, ServiceConfig};

use crate::domain::links::LinkKey;

pub const SERVICE: &str = "marketing";
pub const DEFAULT_GRPC_PORT: u16 = 50053;

#[derive(Debug, Clone)]
pub struct MarketingConfig {
    pub service: ServiceConfig,
    /// gRPC endpoint of the customers service (segments, contacts'
    /// addresses), called with the caller's rights.
    pub customers_url: String,
    pub sending: SendingConfig,
    /// How often the loyalty expiry scan looks for points that are due
    /// (`MARKETING_SCAN_INTERVAL_MS`, 60 s).
    pub scan_interval: Duration,
    /// How the service gets tokens to act by itself (automation rules):
    /// `CRM_SERVICE_TOKEN_URL` and `CRM_SERVICE_SECRET`.
    pub service_tokens: std::sync::Arc<kit::service_tokens::ServiceTokens>,
    pub automation: AutomationConfig,
}

/// What automation rules reach beyond marketing and customers.
#[derive(Debug, Clone)]
pub struct AutomationConfig {
    /// First retry delay of a failed automation action, doubled per
    /// attempt (`MARKETING_AUTOMATION_RETRY_MS`, 5 s).
    pub retry: Duration,
    /// gRPC endpoint of the sales service, for lead actions
    /// (`MARKETING_SALES_URL`, `http://127.0.0.1:50052`).
    pub sales_url: String,
    /// gRPC endpoint of the service desk, for ticket actions
    /// (`MARKETING_SERVICEDESK_URL`, `http://127.0.0.1:50054`).
    pub servicedesk_url: String,
    /// Where webhook actions may connect: public addresses, plus
    /// `MARKETING_WEBHOOK_ALLOWED_NETWORKS`, minus
    /// `MARKETING_WEBHOOK_DENIED_NETWORKS`.
    pub egress: kit::egress::EgressPolicy,
    /// `MARKETING_ALLOW_INSECURE_WEBHOOKS=true` (development): `http://`
    /// webhook URLs too; the address checks stay.
    pub allow_insecure_webhooks: bool,
}

impl AutomationConfig {
    /// For tests: the sales service and the service desk at these
    /// addresses, quick retries.
    pub fn to(sales_url: &str, servicedesk_url: &str) -> Self {
        AutomationConfig {
            retry: Duration::from_millis(100),
            sales_url: sales_url.to_owned(),
            servicedesk_url: servicedesk_url.to_owned(),
            egress: Default::default(),
            allow_insecure_webhooks: false,
        }
    }
}

/// Where e-mail goes and how fast.
#[derive(Clone)]
pub struct SendingConfig {
    /// `MARKETING_SMTP_URL`: `smtp://[user:pass@]host:port[?tls=required]`
    /// (STARTTLS), `smtps://...` (TLS), or `file:///dir` (each message
    /// written as an .eml file: development). None: sends are refused.
    pub relay: Option<String>,
    /// Messages per second per tenant (`MARKETING_SEND_RATE`, 20).
    pub rate_per_tenant: u32,
    /// How long a sender may hold claimed messages before they count as
    /// interrupted (`MARKETING_SEND_LEASE_MS`, 120 s); longer than a batch
    /// can take with the relay's timeouts.
    pub lease: Duration,
    /// Pause of the senders and of the automation runners when nothing is
    /// due (`MARKETING_SEND_POLL_MS`, 500 ms).
    pub poll: Duration,
    /// Signs the links in messages (`MARKETING_LINK_KEY`, base64 of at
    /// least 32 bytes; required with a relay).
    pub link_key: LinkKey,
    /// Where people reach the gateway's public routes, for the links in
    /// messages (`MARKETING_PUBLIC_URL`, `http://127.0.0.1:8080`).
    pub public_url: String,
    /// The SMS provider; none: SMS sends are refused.
    pub sms: Option<SmsConfig>,
    /// Signs the relay's and provider's delivery reports
    /// (`MARKETING_WEBHOOK_KEY`, base64 of at least 32 bytes); none: the
    /// reports are refused.
    pub webhook_key: Option<LinkKey>,
}

/// Where text messages go (`events::sms`).
#[derive(Clone)]
pub struct SmsConfig {
    /// `MARKETING_SMS_URL`: the provider's http(s) endpoint, or
    /// `file:///dir` (each message written as a .json file: development).
    pub url: String,
    /// `MARKETING_SMS_TOKEN`: sent as a bearer token.
    pub token: Option<String>,
    /// `MARKETING_SMS_FROM`: the sender id or number messages come from
    /// ("CRM").
    pub from: String,
}

impl std::fmt::Debug for SendingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay URL may carry credentials.
        f.debug_struct("SendingConfig")
            .field("relay", &self.relay.as_ref().map(|_| "<set>"))
            .field("rate_per_tenant", &self.rate_per_tenant)
            .field("lease", &self.lease)
            .field("public_url", &self.public_url)
            .field("sms", &self.sms.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl SendingConfig {
    /// For tests: a relay, a pace, short lease and poll, a random link key.
    pub fn to(relay: &str, rate_per_tenant: u32) -> Self {
        SendingConfig {
            relay: Some(relay.to_owned()),
            rate_per_tenant,
            lease: Duration::from_secs(120),
            poll: Duration::from_millis(50),
            link_key: LinkKey::random(),
            public_url: "http://127.0.0.1:8080".into(),
            sms: None,
            webhook_key: None,
        }
    }
}

pub fn from_env() -> Result<MarketingConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    let relay: Option<String> = env.optional(
        "SMTP_URL",
        "smtp://host:port, smtps://host:port or file:///directory",
    );
    let rate_per_tenant = env.or("SEND_RATE", "messages per second, above 0", 20u32);
    if rate_per_tenant == 0 {
        env.problem("MARKETING_SEND_RATE must be above 0");
    }
    let lease = env.millis("SEND_LEASE_MS", Duration::from_secs(120));
    let poll = env.millis("SEND_POLL_MS", Duration::from_millis(500));
    let link_key: Option<String> = env.optional("LINK_KEY", "base64 of at least 32 bytes");
    let link_key = match (link_key, &relay) {
        (Some(encoded), _) => match LinkKey::from_base64(&encoded) {
            Ok(key) => Some(key),
            Err(problem) => {
                env.problem(format!("MARKETING_LINK_KEY {problem}"));
                None
            }
        },
        (None, Some(_)) => {
            env.problem(
                "MARKETING_LINK_KEY is required with MARKETING_SMTP_URL (openssl rand -base64 32)",
            );
            None
        }
        // Without a relay nothing is sent, so no link is ever made.
        (None, None) => Some(LinkKey::random()),
    };
    let public_url = env.or(
        "PUBLIC_URL",
        "the gateway's public http(s) address",
        "http://127.0.0.1:8080".to_owned(),
    );
    if !(public_url.starts_with("https://") || public_url.starts_with("http://")) {
        env.problem("MARKETING_PUBLIC_URL must be an http:// or https:// address");
    }
    let sms_url: Option<String> = env.optional(
        "SMS_URL",
        "http(s)://provider/endpoint or file:///directory",
    );
    let sms_token: Option<String> = env.optional("SMS_TOKEN", "the provider's API token");
    let sms_from = env.or("SMS_FROM", "a sender id or number", "CRM".to_owned());
    if let Some(url) = &sms_url {
        if !["https://", "http://", "file://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            env.problem("MARKETING_SMS_URL must be an http(s):// or file:// address");
        }
    }
    let webhook_key = env
        .optional::<String>("WEBHOOK_KEY", "base64 of at least 32 bytes")
        .and_then(|encoded| match LinkKey::from_base64(&encoded) {
            Ok(key) => Some(key),
            Err(problem) => {
                env.problem(format!("MARKETING_WEBHOOK_KEY {problem}"));
                None
            }
        });
    let scan_interval = env.millis("SCAN_INTERVAL_MS", Duration::from_secs(60));
    let service_tokens = std::sync::Arc::new(kit::service_tokens::ServiceTokens::parse(&mut env));
    let automation = AutomationConfig {
        retry: env.millis("AUTOMATION_RETRY_MS", Duration::from_secs(5)),
        sales_url: env.or(
            "SALES_URL",
            "an http:// URL",
            "http://127.0.0.1:50052".to_owned(),
        ),
        servicedesk_url: env.or(
            "SERVICEDESK_URL",
            "an http:// URL",
            "http://127.0.0.1:50054".to_owned(),
        ),
        egress: kit::egress::EgressPolicy::from_env(&mut env),
        allow_insecure_webhooks: env.or("ALLOW_INSECURE_WEBHOOKS", "true or false", false),
    };
    env.finish()?;
    Ok(MarketingConfig {
        service,
        customers_url,
        scan_interval,
        service_tokens,
        automation,
        sending: SendingConfig {
            relay,
            rate_per_tenant: rate_per_tenant.max(1),
            lease,
            poll,
            link_key: link_key.unwrap_or_else(LinkKey::random),
            public_url,
            webhook_key,
            sms: sms_url.map(|url| SmsConfig {
                url,
                token: sms_token,
                from: sms_from,
            }),
        },
    })
}
