//! Configuration of the marketing service: the platform settings read from
//! `MARKETING_*` (or shared) environment variables, plus where the
//! customers service answers. Default gRPC port 50053, admin port 51053.

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "marketing";
pub const DEFAULT_GRPC_PORT: u16 = 50053;

#[derive(Debug, Clone)]
pub struct MarketingConfig {
    pub service: ServiceConfig,
    /// gRPC endpoint of the customers service (segments, contacts'
    /// addresses), called with the caller's rights.
    pub customers_url: String,
}

pub fn from_env() -> Result<MarketingConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    env.finish()?;
    Ok(MarketingConfig {
        service,
        customers_url,
    })
}
