//! FeedbackService: the root causes complaints and feedback are filed
//! under.

use crm_proto::crm::servicedesk::v1::feedback_service_server::FeedbackService;
use crm_proto::crm::servicedesk::v1::*;
use kit::error::Violations;
use kit::input::text;
use kit::paging::Page;
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{commit, handle, name_page, name_taken, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::parse_id;
use crate::store::feedback as store;

pub struct FeedbackHandlers(pub SharedState);

#[tonic::async_trait]
impl FeedbackService for FeedbackHandlers {
    async fn create_root_cause(
        &self,
        request: Request<CreateRootCauseRequest>,
    ) -> Result<Response<CreateRootCauseResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateRootCauseRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .root_cause
                .ok_or_else(|| Error::invalid("root_cause", "is required"))?;
            let mut v = Violations::new();
            v.check(text("root_cause.name", &mut c.name, 100));
            if c.name.is_empty() {
                v.add("root_cause.name", "is required");
            }
            v.check(text("root_cause.description", &mut c.description, 500));
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "root_cause";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_root_cause(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("root cause", existing))?;
                return Ok(CreateRootCauseResponse {
                    root_cause: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_root_cause(&mut tx, tenant, id, &c, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "root_cause", &c.name))?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            let event = RootCauseCreated {
                root_cause: Some(saved.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(CreateRootCauseResponse {
                root_cause: Some(saved),
            })
        })
        .await
    }

    async fn list_root_causes(
        &self,
        request: Request<ListRootCausesRequest>,
    ) -> Result<Response<ListRootCausesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<(String, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_root_causes(
                &mut tx,
                caller.tenant_id,
                page.after.clone(),
                page.fetch_limit(),
            )
            .await?;
            let (root_causes, page) = name_page(rows, page.size, |c: &RootCause| (&c.name, &c.id));
            Ok(ListRootCausesResponse { root_causes, page })
        })
        .await
    }

    async fn delete_root_cause(
        &self,
        request: Request<DeleteRootCauseRequest>,
    ) -> Result<Response<DeleteRootCauseResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let deleted = store::delete_root_cause(&mut tx, caller.tenant_id, id)
                .await
                .map_err(|e| match Error::from(e) {
                    Error::FailedPrecondition(_) => Error::FailedPrecondition(
                        "tickets name this root cause; it stays for their statistics".into(),
                    ),
                    other => other,
                })?;
            if !deleted {
                return Err(Error::not_found("root cause", id));
            }
            commit(tx).await?;
            Ok(DeleteRootCauseResponse {})
        })
        .await
    }
}
