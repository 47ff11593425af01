//! Configuration of the sales service: the platform settings read from
//! `SALES_*` (or shared) environment variables, plus where the customers
//! service answers. Default gRPC port 50052, admin port 51052.

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "sales";
pub const DEFAULT_GRPC_PORT: u16 = 50052;

#[derive(Debug, Clone)]
pub struct SalesConfig {
    pub service: ServiceConfig,
    /// gRPC endpoint of the customers service (lead conversion).
    pub customers_url: String,
    /// How often the background scans run (invoices past due, leads whose
    /// score decays).
    pub scan_interval: std::time::Duration,
}

pub fn from_env() -> Result<SalesConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    let scan_interval = env.millis("SCAN_INTERVAL_MS", std::time::Duration::from_secs(60));
    env.finish()?;
    Ok(SalesConfig {
        service,
        customers_url,
        scan_interval,
    })
}
