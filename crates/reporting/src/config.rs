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
}

impl ReportingConfig {
    pub fn new(service: ServiceConfig) -> Self {
        ReportingConfig {
            service,
            clock: kit::clock::Clock::system(),
        }
    }
}

pub fn from_env() -> Result<ReportingConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let env = Env::from_process(SERVICE);
    env.finish()?;
    Ok(ReportingConfig::new(service))
}
