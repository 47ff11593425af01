//! Configuration of the customers service: the platform settings read from
//! `CUSTOMERS_*` (or shared) environment variables. Default gRPC port 50051,
//! admin port 51051.

use kit::config::{ConfigError, Env, ServiceConfig};

use crate::ImportLimits;

pub const SERVICE: &str = "customers";
pub const DEFAULT_GRPC_PORT: u16 = 50051;

pub fn from_env() -> Result<ServiceConfig, ConfigError> {
    ServiceConfig::from_env(SERVICE, DEFAULT_GRPC_PORT)
}

/// Import limits from `CUSTOMERS_IMPORT_MAX_BYTES`,
/// `CUSTOMERS_IMPORT_BYTES_PER_HOUR` and `CUSTOMERS_IMPORTS_PER_TENANT`.
pub fn import_limits_from_env() -> Result<ImportLimits, ConfigError> {
    let mut env = Env::from_process(SERVICE);
    let defaults = ImportLimits::default();
    let limits = ImportLimits {
        max_bytes: env.or("IMPORT_MAX_BYTES", "a number of bytes", defaults.max_bytes),
        bytes_per_hour: env.or(
            "IMPORT_BYTES_PER_HOUR",
            "a number of bytes below 4294967296",
            defaults.bytes_per_hour,
        ),
        concurrent_per_tenant: env.or(
            "IMPORTS_PER_TENANT",
            "a whole number",
            defaults.concurrent_per_tenant,
        ),
    };
    env.finish()?;
    Ok(limits)
}
