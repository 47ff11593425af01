//! gRPC handlers: decode the request, authorise the caller, apply the
//! domain rules, call the store and write events in one transaction, encode.

pub mod actions;
pub mod channels;
pub mod feedback;
pub mod knowledge;
pub mod portal;
pub mod routing;
pub mod satisfaction;
pub mod search;
pub mod slas;
pub mod tickets;

use std::sync::Arc;

use kit::auth::CallerContext;
use kit::db::{Database, TenantTx};
use kit::outbox::Outbox;
use tonic::transport::Channel;

/// What every handler needs.
pub struct State {
    pub db: Database,
    pub outbox: Outbox,
    /// The customers service: requesters and their accounts.
    pub customers: Channel,
    /// The time SLA clocks count in.
    pub clock: kit::clock::Clock,
    /// Whether agents' public replies on mail tickets are mailed (a relay
    /// is configured).
    pub mails_replies: bool,
    /// Signs satisfaction survey links and derives chat channels' secrets
    /// (`SERVICEDESK_LINK_KEY`); none: no surveys, no chat channels.
    pub link_key: Option<kit::links::LinkKey>,
    /// Where people reach the gateway's public routes (survey links).
    pub public_url: String,
}

pub type SharedState = Arc<State>;

impl State {
    /// Whether portal links can be signed and mailed.
    pub fn mails_portal_links(&self) -> bool {
        self.mails_replies && self.link_key.is_some()
    }

    pub async fn begin(&self, caller: &CallerContext) -> kit::Result<TenantTx> {
        Ok(self.db.begin_tenant(caller.tenant_id).await?)
    }
}

pub use kit::rpc::{check_version, commit, handle, page_response, version_of};

/// The account `id` as the caller (whose token this is) sees it in the
/// customers service: `None` when it is not there for them; a refusal of
/// the caller's rights stays a refusal.
pub async fn account_seen(
    state: &State,
    token: &kit::rpc::Forwarded,
    id: &str,
) -> kit::Result<Option<crm_proto::crm::customers::v1::Account>> {
    use crm_proto::crm::customers::v1::account_service_client::AccountServiceClient;
    let request = crm_proto::crm::customers::v1::GetAccountRequest { id: id.to_owned() };
    match AccountServiceClient::new(state.customers.clone())
        .get_account(kit::rpc::on_behalf(token, request))
        .await
    {
        Ok(found) => Ok(found.into_inner().account),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::InvalidArgument
            ) =>
        {
            Ok(None)
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            Err(kit::Error::PermissionDenied(status.message().to_owned()))
        }
        Err(status) => Err(kit::Error::upstream("customers", &status)),
    }
}

/// The whole of a list handler for a tenant's records in name order
/// ([`crate::store::list_by_name`]: calendars, categories, macros, chat
/// channels, support forms, root causes): the page token read, one row
/// more than the page fetched with `list`, the next token made from the
/// last row's name and id.
pub async fn named_page<R>(
    state: &State,
    caller: &CallerContext,
    request: Option<&crm_proto::crm::common::v1::PageRequest>,
    list: impl AsyncFnOnce(
        &mut sqlx::PgConnection,
        uuid::Uuid,
        Option<(String, uuid::Uuid)>,
        i64,
    ) -> sqlx::Result<Vec<R>>,
    name_and_id: impl Fn(&R) -> (&String, &String),
) -> kit::Result<(Vec<R>, Option<crm_proto::crm::common::v1::PageResponse>)> {
    let page = kit::paging::Page::<(String, uuid::Uuid)>::from_request(request)?;
    let mut tx = state.begin(caller).await?;
    let rows = list(
        &mut tx,
        caller.tenant_id,
        page.after.clone(),
        page.fetch_limit(),
    )
    .await?;
    let (rows, next) = kit::paging::finish_page(rows, page.size, |row: &R| {
        let (name, id) = name_and_id(row);
        (
            name.to_lowercase(),
            uuid::Uuid::parse_str(id).unwrap_or_default(),
        )
    });
    Ok((rows, page_response(next)))
}

/// The whole of a delete handler: `delete` (the tenant's record by `key`)
/// in the caller's transaction; not found when it deleted nothing; `in_use`
/// is the refusal when other records still refer to it (a foreign key).
pub async fn delete_one<K: std::fmt::Display>(
    state: &State,
    caller: &CallerContext,
    entity: &'static str,
    key: K,
    in_use: &str,
    delete: impl AsyncFnOnce(&mut sqlx::PgConnection, uuid::Uuid) -> sqlx::Result<bool>,
) -> kit::Result<()> {
    let mut tx = state.begin(caller).await?;
    let deleted =
        delete(&mut tx, caller.tenant_id)
            .await
            .map_err(|e| match kit::Error::from(e) {
                kit::Error::FailedPrecondition(_) if !in_use.is_empty() => {
                    kit::Error::FailedPrecondition(in_use.to_owned())
                }
                other => other,
            })?;
    if !deleted {
        return Err(kit::Error::not_found(entity, key));
    }
    commit(tx).await
}

/// A unique name taken, told in the caller's terms: `calendar.name: a
/// calendar named "Office" already exists`; other errors pass unchanged.
pub fn name_taken(error: impl Into<kit::Error>, entity: &str, name: &str) -> kit::Error {
    error
        .into()
        .exists_as(|| format!("{entity}.name: a {entity} named {name:?} already exists"))
}
