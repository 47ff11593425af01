//! Configuration of the service desk: the platform settings read from
//! `SERVICEDESK_*` (or shared) environment variables, plus where the
//! customers service answers. Default gRPC port 50054, admin port 51054.

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
        }
    }
}

const DEFAULT_SLA_SCAN_INTERVAL: Duration = Duration::from_secs(15);

pub fn from_env() -> Result<ServiceDeskConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    let sla_scan_interval = env.millis("SLA_SCAN_INTERVAL_MS", DEFAULT_SLA_SCAN_INTERVAL);
    env.finish()?;
    Ok(ServiceDeskConfig {
        sla_scan_interval,
        ..ServiceDeskConfig::new(service, customers_url)
    })
}
