//! Configuration of the reporting service: the platform settings read from
//! `REPORTING_*` (or shared) environment variables. Default gRPC port
//! 50055, admin port 51055.

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "reporting";
pub const DEFAULT_GRPC_PORT: u16 = 50055;
pub const DEFAULT_MAIL_FROM: &str = "CRM reports <reports@crm.localhost>";

#[derive(Debug, Clone)]
pub struct ReportingConfig {
    pub service: ServiceConfig,
    /// What "now" is for periods and backlog ages (a manual clock in tests).
    pub clock: kit::clock::Clock,
    /// How often the churn and schedule scans look for work
    /// (`REPORTING_SCAN_INTERVAL_MS`, 10 s).
    pub scan_interval: std::time::Duration,
    /// The relay scheduled reports are mailed through
    /// (`REPORTING_SMTP_URL`: smtp://, smtps:// or file://); none: reports
    /// cannot be scheduled.
    pub smtp_url: Option<String>,
    /// Who scheduled reports come from (`REPORTING_MAIL_FROM`).
    pub mail_from: String,
    /// The sales and service desk services a reconciliation reads
    /// (`REPORTING_SALES_URL`, `REPORTING_SERVICEDESK_URL`).
    pub sales_url: Option<String>,
    pub servicedesk_url: Option<String>,
}

impl ReportingConfig {
    pub fn new(service: ServiceConfig) -> Self {
        ReportingConfig {
            service,
            clock: kit::clock::Clock::system(),
            scan_interval: std::time::Duration::from_secs(10),
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.into(),
            sales_url: None,
            servicedesk_url: None,
        }
    }
}

pub fn from_env() -> Result<ReportingConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let scan_interval = env.millis("SCAN_INTERVAL_MS", std::time::Duration::from_secs(10));
    let smtp_url = env.optional("SMTP_URL", "an smtp://, smtps:// or file:// URL");
    let mail_from: String = env.or(
        "MAIL_FROM",
        "a mailbox such as Reports <reports@example.com>",
        DEFAULT_MAIL_FROM.to_owned(),
    );
    if mail_from.parse::<lettre::message::Mailbox>().is_err() {
        env.problem(format!(
            "REPORTING_MAIL_FROM: {mail_from:?} is not a mailbox"
        ));
    }
    let sales_url = env.optional("SALES_URL", "an http:// URL");
    let servicedesk_url = env.optional("SERVICEDESK_URL", "an http:// URL");
    env.finish()?;
    Ok(ReportingConfig {
        scan_interval,
        smtp_url,
        mail_from,
        sales_url,
        servicedesk_url,
        ..ReportingConfig::new(service)
    })
}
