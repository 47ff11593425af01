//! Configuration of the reporting service: the platform settings read from
//! `REPORTING_*` (or shared) environment variables. Default gRPC port
//! 50055, admin port 51055.

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "reporting";
pub const DEFAULT_GRPC_PORT: u16 = 50055;

#[derive(Debug, Clone)]
pub struct ReportingConfig {
    pub service: ServiceConfig,
    /// What "now" is for periods and backlog ages (a manual clock in tests).
    pub clock: kit::clock::Clock,
    /// How often the churn scan looks for accounts due
    /// (`REPORTING_SCAN_INTERVAL_MS`, 10 s).
    pub scan_interval: std::time::Duration,
}

impl ReportingConfig {
    pub fn new(service: ServiceConfig) -> Self {
        ReportingConfig {
            service,
            clock: kit::clock::Clock::system(),
            scan_interval: std::time::Duration::from_secs(10),
        }
    }
}

pub fn from_env() -> Result<ReportingConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let scan_interval = env.millis("SCAN_INTERVAL_MS", std::time::Duration::from_secs(10));
    env.finish()?;
    Ok(ReportingConfig {
        scan_interval,
        ..ReportingConfig::new(service)
    })
}
