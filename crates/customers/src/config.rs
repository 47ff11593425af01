//! Configuration of the customers service: the platform settings read from
//! `CUSTOMERS_*` (or shared) environment variables. Default gRPC port 50051,
//! admin port 51051.

use kit::config::{ConfigError, ServiceConfig};

pub const SERVICE: &str = "customers";
pub const DEFAULT_GRPC_PORT: u16 = 50051;

pub fn from_env() -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)
}
