//! gRPC handlers: decode the request, authorise the caller, read the
//! projections within the caller's visibility, encode.

pub mod dashboards;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};

/// What every handler needs.
pub struct State {
    pub db: Database,
    /// What "now" is for default periods and backlog ages.
    pub clock: kit::clock::Clock,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

pub use kit::rpc::handle;
