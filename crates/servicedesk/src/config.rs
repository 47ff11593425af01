//! Configuration of the service desk: the platform settings read from
//! `SERVICEDESK_*` (or shared) environment variables, plus where the
//! customers service answers. Default gRPC port 50054, admin port 51054.

use kit::config::{ConfigError, Env, ServiceConfig};

pub const SERVICE: &str = "servicedesk";
pub const DEFAULT_GRPC_PORT: u16 = 50054;

#[derive(Debug, Clone)]
pub struct ServiceDeskConfig {
    pub service: ServiceConfig,
    /// gRPC endpoint of the customers service (requesters and accounts,
    /// checked with the caller's rights).
    pub customers_url: String,
}

pub fn from_env() -> Result<ServiceDeskConfig, ConfigError> {
    let service = ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)?;
    let mut env = Env::from_process(SERVICE);
    let customers_url = env.or(
        "CUSTOMERS_URL",
        "an http:// URL",
        "http://127.0.0.1:50051".to_owned(),
    );
    env.finish()?;
    Ok(ServiceDeskConfig {
        service,
        customers_url,
    })
}
