//! What keeps imports from taking the service: a cap on the bytes of one
//! import, an hourly byte budget per tenant, and a limit on the imports a
//! tenant runs at once (all per instance). Records have their own size cap
//! in `domain::transfer`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tonic::Status;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// Bytes one import may upload (`CUSTOMERS_IMPORT_MAX_BYTES`).
    pub max_bytes: u64,
    /// Bytes a tenant may upload an hour (`CUSTOMERS_IMPORT_BYTES_PER_HOUR`).
    pub bytes_per_hour: u32,
    /// Imports a tenant may run at once (`CUSTOMERS_IMPORTS_PER_TENANT`).
    pub concurrent_per_tenant: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_bytes: 512 << 20,
            bytes_per_hour: 2 << 30,
            concurrent_per_tenant: 2,
        }
    }
}

pub struct ImportGate {
    limits: ImportLimits,
    running: Arc<Mutex<HashMap<Uuid, usize>>>,
    volume: DefaultKeyedRateLimiter<Uuid>,
}

/// A running import of a tenant, counted until dropped.
pub struct Running {
    running: Arc<Mutex<HashMap<Uuid, usize>>>,
    tenant: Uuid,
    uploaded: u64,
    max_bytes: u64,
}

impl ImportGate {
    pub fn new(limits: ImportLimits) -> Self {
        let per_hour = NonZeroU32::new(limits.bytes_per_hour).unwrap_or(NonZeroU32::MIN);
        ImportGate {
            volume: RateLimiter::keyed(Quota::per_hour(per_hour)),
            running: Arc::default(),
            limits,
        }
    }

    /// Admits one more import of `tenant`, or refuses it while the tenant
    /// already runs as many as it may.
    pub fn start(&self, tenant: Uuid) -> Result<Running, Status> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let count = running.entry(tenant).or_default();
        if *count >= self.limits.concurrent_per_tenant {
            return Err(Status::resource_exhausted(format!(
                "the tenant already runs {} imports; wait until one has finished",
                self.limits.concurrent_per_tenant
            )));
        }
        *count += 1;
        Ok(Running {
            running: self.running.clone(),
            tenant,
            uploaded: 0,
            max_bytes: self.limits.max_bytes,
        })
    }

    /// Counts `bytes` more of `import`; refuses them past the import's cap
    /// or the tenant's hourly volume.
    pub fn upload(&self, import: &mut Running, bytes: usize) -> Result<(), Status> {
        import.uploaded += bytes as u64;
        if import.uploaded > import.max_bytes {
            return Err(Status::resource_exhausted(format!(
                "an import may upload at most {} bytes; split the file",
                import.max_bytes
            )));
        }
        // Budgets are spent in whole chunks; a chunk larger than the whole
        // hourly budget can never pass.
        let Some(n) = u32::try_from(bytes).ok().and_then(NonZeroU32::new) else {
            return Ok(());
        };
        match self.volume.check_key_n(&import.tenant, n) {
            Ok(Ok(())) => Ok(()),
            _ => Err(Status::resource_exhausted(format!(
                "the tenant's import volume of {} bytes an hour is used up; retry later",
                self.limits.bytes_per_hour
            ))),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = running.get_mut(&self.tenant) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_runs_a_bounded_number_of_imports_of_bounded_size() {
        let gate = ImportGate::new(ImportLimits {
            max_bytes: 100,
            bytes_per_hour: 150,
            concurrent_per_tenant: 1,
        });
        let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
        let mut first = gate.start(tenant).unwrap();
        assert!(gate.start(tenant).is_err(), "one at a time");
        assert!(gate.start(other).is_ok(), "other tenants are not held up");
        gate.upload(&mut first, 60).unwrap();
        assert!(
            gate.upload(&mut first, 60).is_err(),
            "over the import's 100 bytes"
        );
        drop(first);
        let mut second = gate.start(tenant).unwrap();
        gate.upload(&mut second, 30).unwrap();
        let spent = gate.upload(&mut second, 70).unwrap_err();
        assert!(spent.message().contains("an hour"), "{spent:?}");
    }
}
