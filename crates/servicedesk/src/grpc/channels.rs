//! ChannelService: the support addresses mail arrives at.

use crm_proto::crm::servicedesk::v1::channel_service_server::ChannelService;
use crm_proto::crm::servicedesk::v1::*;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::mail::normalize_mailbox;
use crate::domain::parse_id;
use crate::store::mail as store;

pub struct ChannelHandlers(pub SharedState);

#[tonic::async_trait]
impl ChannelService for ChannelHandlers {
    async fn create_mailbox(
        &self,
        request: Request<CreateMailboxRequest>,
    ) -> Result<Response<CreateMailboxResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateMailboxRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut m = request
                .mailbox
                .ok_or_else(|| Error::invalid("mailbox", "is required"))?;
            let mut v = Violations::new();
            normalize_mailbox(&mut m, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "mailbox";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_mailbox(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("mailbox", existing))?;
                return Ok(CreateMailboxResponse {
                    mailbox: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_mailbox(&mut tx, tenant, id, &m, &caller.subject)
                .await
                .map_err(|e| {
                    Error::from(e).exists_as(|| {
                        format!("mailbox.address: {} already receives mail here", m.address)
                    })
                })?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateMailboxResponse {
                mailbox: Some(saved),
            })
        })
        .await
    }

    async fn list_mailboxes(
        &self,
        request: Request<ListMailboxesRequest>,
    ) -> Result<Response<ListMailboxesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list_mailboxes(&mut tx, caller.tenant_id, page.after, page.fetch_limit())
                    .await?;
            let (mailboxes, next) = finish_page(rows, page.size, |m: &Mailbox| {
                Uuid::parse_str(&m.id).unwrap_or_default()
            });
            Ok(ListMailboxesResponse {
                mailboxes,
                page: page_response(next),
            })
        })
        .await
    }

    async fn delete_mailbox(
        &self,
        request: Request<DeleteMailboxRequest>,
    ) -> Result<Response<DeleteMailboxResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            if !store::delete_mailbox(&mut tx, caller.tenant_id, id).await? {
                return Err(Error::not_found("mailbox", id));
            }
            commit(tx).await?;
            Ok(DeleteMailboxResponse {})
        })
        .await
    }
}
