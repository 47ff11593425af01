//! MacroService and TicketJobService: what agents do to tickets in one
//! step.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::servicedesk::v1::macro_service_server::MacroService;
use crm_proto::crm::servicedesk::v1::ticket_job_service_server::TicketJobService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::tickets::{follow_change, record_message, save_change, visible};
use super::{
    commit, delete_one, handle, name_taken, named_page, page_response, SharedState, State,
};
use crate::domain::access::{authorize, role_allows, Action};
use crate::domain::actions::{self, ReplyContext, MAX_JOB_TICKETS};
use crate::domain::{optional_id, parse_id};
use crate::store::actions as store;
use crate::store::tickets as ticket_store;

pub struct MacroHandlers(pub SharedState);
pub struct TicketJobHandlers(pub SharedState);

/// A macro of the caller's tenant; others are not found.
async fn find_macro(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> kit::Result<Macro> {
    store::find_macro(tx, tenant, id)
        .await?
        .ok_or_else(|| Error::not_found("macro", id))
}

/// The requester's names for a reply that uses them, read in customers
/// with the caller's rights (a contact they cannot see has no names).
async fn requester_names(
    state: &State,
    token: &Forwarded,
    reply: &str,
    t: &Ticket,
) -> kit::Result<(String, String)> {
    if t.requester_contact_id.is_empty() || !reply.contains("requester") {
        return Ok(Default::default());
    }
    let mut contacts = ContactServiceClient::new(state.customers.clone());
    let request = customers::GetContactRequest {
        id: t.requester_contact_id.clone(),
    };
    match contacts.get_contact(on_behalf(token, request)).await {
        Ok(found) => {
            let contact = found.into_inner().contact.unwrap_or_default();
            Ok((contact.first_name, contact.last_name))
        }
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::NotFound | tonic::Code::PermissionDenied
            ) =>
        {
            Ok(Default::default())
        }
        Err(status) => Err(Error::upstream("customers", &status)),
    }
}

/// A macro's reply for a ticket, rendered.
fn rendered(m: &Macro, t: &Ticket, names: (String, String)) -> kit::Result<String> {
    if m.reply.is_empty() {
        return Ok(String::new());
    }
    actions::render(&m.reply, &ReplyContext::new(t, names.0, names.1))
        .map_err(|reason| Error::invalid("macro_id", format!("the macro's reply fails: {reason}")))
}

/// Applies `changes` to a ticket locked as `before` and saves it with what
/// follows; the reason when they do not fit this ticket.
async fn change(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    before: &Ticket,
    changes: &TicketChanges,
) -> kit::Result<Result<Ticket, String>> {
    let mut after = actions::apply(before, changes);
    if let Err(reason) = actions::check_applied(before, &mut after) {
        return Ok(Err(reason));
    }
    let saved = save_change(state, tx, caller, before, &after).await?;
    if &saved == before {
        return Ok(Ok(saved));
    }
    let followed = follow_change(state, tx, caller.tenant_id, Some(before), saved, None).await?;
    Ok(Ok(followed))
}

#[tonic::async_trait]
impl MacroService for MacroHandlers {
    async fn create_macro(
        &self,
        request: Request<CreateMacroRequest>,
    ) -> Result<Response<CreateMacroResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateMacroRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut m = request
                .r#macro
                .ok_or_else(|| Error::invalid("macro", "is required"))?;
            let mut v = Violations::new();
            actions::check_macro(&mut m, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "macro";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                return Ok(CreateMacroResponse {
                    r#macro: Some(find_macro(&mut tx, tenant, existing).await?),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_macro(&mut tx, tenant, id, &m, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "macro", &m.name))?;
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
            Ok(CreateMacroResponse {
                r#macro: Some(saved),
            })
        })
        .await
    }

    async fn get_macro(
        &self,
        request: Request<GetMacroRequest>,
    ) -> Result<Response<GetMacroResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetMacroResponse {
                r#macro: Some(find_macro(&mut tx, caller.tenant_id, id).await?),
            })
        })
        .await
    }

    async fn list_macros(
        &self,
        request: Request<ListMacrosRequest>,
    ) -> Result<Response<ListMacrosResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (macros, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                store::list_macros,
                |m: &Macro| (&m.name, &m.id),
            )
            .await?;
            Ok(ListMacrosResponse { macros, page })
        })
        .await
    }

    async fn delete_macro(
        &self,
        request: Request<DeleteMacroRequest>,
    ) -> Result<Response<DeleteMacroResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let id = parse_id("id", &request.id)?;
            delete_one(&self.0, &caller, "macro", id, "", async |tx, tenant| {
                store::delete_macro(tx, tenant, id).await
            })
            .await?;
            Ok(DeleteMacroResponse {})
        })
        .await
    }

    async fn preview_macro(
        &self,
        request: Request<PreviewMacroRequest>,
    ) -> Result<Response<PreviewMacroResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let ticket_id = parse_id("ticket_id", &request.ticket_id)?;
            let macro_id = parse_id("macro_id", &request.macro_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = visible(&mut tx, &caller, ticket_id, false).await?;
            let m = find_macro(&mut tx, caller.tenant_id, macro_id).await?;
            drop(tx);
            let names = requester_names(&self.0, &token, &m.reply, &t).await?;
            let reply = rendered(&m, &t, names)?;
            let mut after = actions::apply(&t, &m.changes.unwrap_or_default());
            actions::check_applied(&t, &mut after).map_err(|reason| {
                Error::FailedPrecondition(format!("the macro does not fit this ticket: {reason}"))
            })?;
            Ok(PreviewMacroResponse {
                reply,
                ticket: Some(after),
            })
        })
        .await
    }

    async fn apply_macro(
        &self,
        request: Request<ApplyMacroRequest>,
    ) -> Result<Response<ApplyMacroResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let ticket_id = parse_id("ticket_id", &request.ticket_id)?;
            let macro_id = parse_id("macro_id", &request.macro_id)?;
            let fingerprint = kit::idempotency::fingerprint(&ApplyMacroRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let tenant = caller.tenant_id;
            // The names first: no lock is held while customers answers.
            let mut tx = self.0.begin(&caller).await?;
            let seen = visible(&mut tx, &caller, ticket_id, false).await?;
            let m = find_macro(&mut tx, tenant, macro_id).await?;
            drop(tx);
            let names = requester_names(&self.0, &token, &m.reply, &seen).await?;

            let mut tx = self.0.begin(&caller).await?;
            let before = visible(&mut tx, &caller, ticket_id, true).await?;
            let entity = "macro_application";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let message = ticket_store::find_message(&mut tx, tenant, existing).await?;
                return Ok(ApplyMacroResponse {
                    ticket: Some(before),
                    message,
                });
            }
            if before.status == TicketStatus::Closed as i32 {
                return Err(Error::FailedPrecondition(
                    "a closed ticket no longer changes".into(),
                ));
            }
            // The reply first, then the changes: "reply and solve" ends
            // solved.
            let reply = rendered(&m, &before, names)?;
            let (message, current) = if reply.is_empty() {
                (None, before.clone())
            } else {
                let message = TicketMessage {
                    kind: MessageKind::PublicReply as i32,
                    body: reply,
                    channel: before.channel,
                    author_id: caller.subject.clone(),
                    ..Default::default()
                };
                let (saved, current) =
                    record_message(&self.0, &mut tx, &caller, &before, &message).await?;
                (Some(saved), current)
            };
            let changes = m.changes.unwrap_or_default();
            let current = change(&self.0, &mut tx, &caller, &current, &changes)
                .await?
                .map_err(|reason| {
                    Error::FailedPrecondition(format!(
                        "the macro does not fit this ticket: {reason}"
                    ))
                })?;
            let remembered = match &message {
                Some(m) => parse_id("message.id", &m.id)?,
                None => ticket_id,
            };
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                remembered,
            )
            .await?;
            commit(tx).await?;
            Ok(ApplyMacroResponse {
                ticket: Some(current),
                message,
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl TicketJobService for TicketJobHandlers {
    async fn bulk_update_tickets(
        &self,
        request: Request<BulkUpdateTicketsRequest>,
    ) -> Result<Response<BulkUpdateTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&BulkUpdateTicketsRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut v = Violations::new();
            let mut ids: Vec<Uuid> = Vec::with_capacity(request.ticket_ids.len());
            for (i, raw) in request.ticket_ids.iter().enumerate() {
                let field = format!("ticket_ids[{i}]");
                match v.check(optional_id(&field, raw)) {
                    Some(Some(id)) if !ids.contains(&id) => ids.push(id),
                    Some(None) => v.add(field, "is required"),
                    _ => {}
                }
            }
            if ids.is_empty() && v.is_empty() {
                v.add("ticket_ids", "is required");
            }
            if request.ticket_ids.len() > MAX_JOB_TICKETS {
                v.add(
                    "ticket_ids",
                    format!("at most {MAX_JOB_TICKETS} tickets per job"),
                );
            }
            let mut changes = request.changes.unwrap_or_default();
            actions::check_changes(&mut changes, "changes", &mut v);
            if actions::is_empty(&changes) {
                v.add("changes", "name at least one change");
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "ticket_job";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let job = store::find_job(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("ticket job", existing))?;
                return Ok(BulkUpdateTicketsResponse { job: Some(job) });
            }
            let job = Uuid::now_v7();
            store::insert_job(&mut tx, tenant, job, &caller.subject, &ids, &changes).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                job,
            )
            .await?;
            commit(tx).await?;

            // Each ticket in its own transaction: one that cannot change
            // (not seen, closed, a bad move) leaves the others changed.
            let mut results = Vec::with_capacity(ids.len());
            for id in ids {
                let mut tx = self.0.begin(&caller).await?;
                let outcome = match visible(&mut tx, &caller, id, true).await {
                    Ok(before) => change(&self.0, &mut tx, &caller, &before, &changes).await?,
                    Err(Error::NotFound { .. }) => Err("no such ticket".to_owned()),
                    Err(error) => return Err(error),
                };
                let (ok, error) = match outcome {
                    Ok(_) => {
                        commit(tx).await?;
                        (true, String::new())
                    }
                    Err(reason) => (false, reason),
                };
                results.push(TicketJobResult {
                    ticket_id: id.to_string(),
                    ok,
                    error,
                });
            }
            let mut tx = self.0.begin(&caller).await?;
            let finished = store::finish_job(&mut tx, tenant, job, &results).await?;
            let event = TicketJobCompleted {
                job_id: finished.id.clone(),
                actor: finished.actor.clone(),
                changes: finished.changes.clone(),
                succeeded: finished.succeeded,
                failed: finished.failed,
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, job, 1, &event)
                .await?;
            commit(tx).await?;
            Ok(BulkUpdateTicketsResponse {
                job: Some(finished),
            })
        })
        .await
    }

    async fn get_ticket_job(
        &self,
        request: Request<GetTicketJobRequest>,
    ) -> Result<Response<GetTicketJobResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let job = store::find_job(&mut tx, caller.tenant_id, id)
                .await?
                .filter(|job| sees_all_jobs(&caller) || job.actor == caller.subject)
                .ok_or_else(|| Error::not_found("ticket job", id))?;
            Ok(GetTicketJobResponse { job: Some(job) })
        })
        .await
    }

    async fn list_ticket_jobs(
        &self,
        request: Request<ListTicketJobsRequest>,
    ) -> Result<Response<ListTicketJobsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let actor = (!sees_all_jobs(&caller)).then_some(caller.subject.as_str());
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_jobs(
                &mut tx,
                caller.tenant_id,
                actor,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (jobs, next) = finish_page(rows, page.size, |j: &TicketJob| {
                Uuid::parse_str(&j.id).unwrap_or_default()
            });
            Ok(ListTicketJobsResponse {
                jobs,
                page: page_response(next),
            })
        })
        .await
    }
}

/// Managers and admins see every bulk job (they name tickets); others see
/// their own.
fn sees_all_jobs(caller: &CallerContext) -> bool {
    caller
        .roles
        .iter()
        .any(|role| role_allows(*role, Action::Configure))
}
