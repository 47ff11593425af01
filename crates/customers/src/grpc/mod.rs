//! gRPC handlers: decode the request, authorise the caller, apply the
//! domain rules, call the store and write events in one transaction, encode.

pub mod accounts;
pub mod activities;
pub mod contacts;
pub mod data;
pub mod fields;
pub mod masks;
pub mod search;
pub mod segments;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::outbox::Outbox;
use kit::Error;
use tonic::{Request, Response, Status};

/// What every handler needs.
pub struct State {
    pub db: Database,
    pub outbox: Outbox,
}

pub type SharedState = Arc<State>;

impl State {
    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

/// Runs a handler body that works on the caller and the decoded request.
pub async fn handle<T, R, F, Fut>(request: Request<T>, body: F) -> Result<Response<R>, Status>
where
    F: FnOnce(CallerContext, T) -> Fut,
    Fut: std::future::Future<Output = kit::Result<R>>,
{
    let caller = kit::auth::caller(&request)?;
    body(caller, request.into_inner())
        .await
        .map(Response::new)
        .map_err(Status::from)
}

/// Commits, mapping failures like any other database error.
pub async fn commit(tx: TenantTx) -> kit::Result<()> {
    tx.commit().await.map_err(Error::from)
}

pub fn page_response(next: String) -> Option<crm_proto::crm::common::v1::PageResponse> {
    Some(crm_proto::crm::common::v1::PageResponse {
        next_page_token: next,
    })
}
