//! gRPC handlers: decode the request, authorise the caller, apply the
//! domain rules, call the store and write events in one transaction, encode.

pub mod catalog;
pub mod forecasts;
pub mod leads;
pub mod opportunities;
pub mod orders;
pub mod pipelines;
pub mod quotes;
pub mod search;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::outbox::Outbox;
use kit::Error;
use tonic::transport::Channel;

/// What every handler needs.
pub struct State {
    pub db: Database,
    pub outbox: Outbox,
    /// The customers service, for lead conversion.
    pub customers: Channel,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

pub use kit::rpc::{commit, handle, page_response};

pub fn version_of(audit: &Option<crm_proto::crm::common::v1::Audit>) -> i64 {
    audit.as_ref().map(|a| a.version).unwrap_or_default()
}

/// Refuses a write based on a stale read (`expected` 0 = no check).
pub fn check_version(
    entity: &'static str,
    id: &str,
    expected: i64,
    actual: i64,
) -> kit::Result<()> {
    if expected != 0 && expected != actual {
        return Err(Error::VersionConflict {
            entity,
            id: id.to_owned(),
            expected,
        });
    }
    Ok(())
}

/// Update masks name proto fields; unknown names are refused.
pub fn mask_allows(mask: &[String], field: &str) -> bool {
    mask.is_empty() || mask.iter().any(|m| m == field)
}

pub fn check_mask(mask: &[String], editable: &[&str], prefix: &str) -> kit::Result<()> {
    for (i, name) in mask.iter().enumerate() {
        if !editable.contains(&name.as_str()) {
            return Err(Error::invalid(
                format!("update_mask.paths[{i}]"),
                format!(
                    "{prefix} field {name:?} cannot be updated; editable: {}",
                    editable.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
