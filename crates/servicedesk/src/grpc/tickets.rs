//! TicketService: tickets, their conversations and history.

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::servicedesk::v1::ticket_service_server::TicketService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{on_behalf, token_of, Forwarded};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    check_version, commit, delete_one, handle, page_response, version_of, SharedState, State,
};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::routing::{holder, needs_routing};
use crate::domain::ticket::{self, apply_mask, changed_fields};
use crate::domain::{optional_id, parse_id};
use crate::events::{routing, sla};
use crate::store::tickets::{self as store, TicketFilter};
use crate::store::{fields, orders};

pub struct TicketHandlers(pub SharedState);

/// A ticket the caller sees; others are not found.
pub(crate) async fn visible(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Ticket> {
    store::find(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("ticket", id))
}

/// Checks the requester in the customers service with the caller's
/// rights (a contact they cannot see is no such contact) and fills in
/// the account from the contact when none is given.
async fn check_requester(state: &State, token: &Forwarded, t: &mut Ticket) -> kit::Result<()> {
    if t.requester_contact_id.is_empty() {
        return Ok(());
    }
    let mut contacts = ContactServiceClient::new(state.customers.clone());
    let request = customers::GetContactRequest {
        id: t.requester_contact_id.clone(),
    };
    match contacts.get_contact(on_behalf(token, request)).await {
        Ok(found) => {
            if t.account_id.is_empty() {
                if let Some(contact) = found.into_inner().contact {
                    t.account_id = contact.account_id;
                }
            }
            Ok(())
        }
        Err(status) if status.code() == tonic::Code::NotFound => Err(Error::invalid(
            "ticket.requester_contact_id",
            "no such contact",
        )),
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            Err(Error::PermissionDenied(status.message().to_owned()))
        }
        Err(status) => Err(Error::upstream("customers", &status)),
    }
}

/// What SLA policies may match on of the ticket's account, read from
/// customers with the caller's rights; none for an account the caller
/// cannot read (it is a reference like the sales ones).
async fn read_account_facts(state: &State, token: &Forwarded, t: &mut Ticket) -> kit::Result<()> {
    t.account_facts = Some(AccountFacts::default());
    if t.account_id.is_empty() {
        return Ok(());
    }
    match super::account_seen(state, token, &t.account_id).await {
        Ok(Some(account)) => {
            t.account_facts = Some(crate::domain::sla::account_facts(&account));
            Ok(())
        }
        Ok(None) | Err(Error::PermissionDenied(_)) => Ok(()),
        Err(other) => Err(other),
    }
}

/// Checks a ticket's custom values against the tenant's ticket fields and
/// keeps them normalised. People must fill required fields; the desk's own
/// intake (mail, chat, forms: the service role) need not.
async fn check_custom_fields(
    tx: &mut PgConnection,
    caller: &CallerContext,
    t: &mut Ticket,
) -> kit::Result<()> {
    let people = !caller.has_role(kit::auth::Role::Service);
    if t.custom_fields.is_empty() && !people {
        return Ok(());
    }
    let catalog = fields::catalog(tx, caller.tenant_id).await?;
    let mut v = Violations::new();
    let stored = catalog.check_values(&t.custom_fields, "ticket.custom_fields", people, &mut v);
    v.into_result()?;
    t.custom_fields = kit::custom_fields::to_proto_values(&serde_json::Value::Object(stored));
    Ok(())
}

/// A ticket naming an order the desk knows, without an account, takes the
/// order's account (an order id the desk has not heard of stays a plain
/// reference: sales' event may still be on its way).
async fn account_from_order(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &mut Ticket,
) -> kit::Result<()> {
    if !t.account_id.is_empty() {
        return Ok(());
    }
    if let Ok(order) = Uuid::parse_str(&t.order_id) {
        if let Some(known) = orders::find(tx, tenant, order).await? {
            t.account_id = known.account_id;
        }
    }
    Ok(())
}

/// A root cause named must be one of the tenant's.
async fn check_root_cause(tx: &mut PgConnection, tenant: Uuid, t: &Ticket) -> kit::Result<()> {
    let Some(cause) = optional_id("ticket.root_cause_id", &t.root_cause_id)
        .map_err(|v| Error::InvalidArgument(vec![v]))?
    else {
        return Ok(());
    };
    match crate::store::feedback::find_root_cause(tx, tenant, cause).await? {
        Some(_) => Ok(()),
        None => Err(Error::invalid(
            "ticket.root_cause_id",
            "is no root cause here",
        )),
    }
}

/// The parent must be a ticket of the tenant the caller sees, and not the
/// ticket itself or one of its children (no cycles).
async fn check_parent(
    tx: &mut PgConnection,
    caller: &CallerContext,
    t: &Ticket,
) -> kit::Result<()> {
    let Some(parent) = optional_id("ticket.parent_ticket_id", &t.parent_ticket_id)
        .map_err(|v| Error::InvalidArgument(vec![v]))?
    else {
        return Ok(());
    };
    if store::find(tx, caller.tenant_id, &scope(caller), parent, false)
        .await?
        .is_none()
    {
        return Err(Error::invalid("ticket.parent_ticket_id", "no such ticket"));
    }
    if let Ok(id) = Uuid::parse_str(&t.id) {
        if store::descends_from(tx, caller.tenant_id, parent, id).await? {
            return Err(Error::invalid(
                "ticket.parent_ticket_id",
                "is this ticket or one of its children",
            ));
        }
    }
    Ok(())
}

/// Publishes what a change of `before` into `after` means: assigned,
/// status changed (solved, reopened), updated.
async fn publish_changes(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    before: &Ticket,
    after: &Ticket,
    changed: &[String],
) -> kit::Result<()> {
    let id = parse_id("ticket.id", &after.id)?;
    let version = version_of(&after.audit);
    if before.assignee_id != after.assignee_id || before.group_id != after.group_id {
        let event = TicketAssigned {
            ticket_id: after.id.clone(),
            assignee_id: after.assignee_id.clone(),
            group_id: after.group_id.clone(),
        };
        state
            .outbox
            .enqueue(tx, caller, id, version, &event)
            .await?;
    }
    if before.status != after.status {
        let event = TicketStatusChanged {
            ticket_id: after.id.clone(),
            previous_status: before.status,
            status: after.status,
        };
        state
            .outbox
            .enqueue(tx, caller, id, version, &event)
            .await?;
        if ticket::solves(before.status, after.status) {
            let event = TicketSolved {
                ticket: Some(after.clone()),
            };
            state
                .outbox
                .enqueue(tx, caller, id, version, &event)
                .await?;
            if state.mails_replies && state.link_key.is_some() {
                crate::store::mail::enqueue_if_mailed(
                    tx,
                    caller.tenant_id,
                    id,
                    crate::domain::mail::MailKind::Survey,
                    None,
                    state.clock.now(),
                )
                .await?;
            }
        }
        if ticket::reopens(before.status, after.status) {
            let event = TicketReopened {
                ticket_id: after.id.clone(),
                status: after.status,
            };
            state
                .outbox
                .enqueue(tx, caller, id, version, &event)
                .await?;
        }
    }
    let other: Vec<String> = changed
        .iter()
        .filter(|f| !matches!(f.as_str(), "status" | "assignee_id" | "group_id"))
        .cloned()
        .collect();
    if !other.is_empty() {
        let event = TicketUpdated {
            ticket: Some(after.clone()),
            changed_fields: other,
        };
        state
            .outbox
            .enqueue(tx, caller, id, version, &event)
            .await?;
    }
    Ok(())
}

/// Stores a changed ticket with its history, events and agents' loads
/// (what follows, routing and SLA clocks, is the caller's:
/// [`follow_change`]).
pub(crate) async fn save_change(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    before: &Ticket,
    after: &Ticket,
) -> kit::Result<Ticket> {
    let changed = changed_fields(before, after);
    if changed.is_empty() {
        return Ok(before.clone());
    }
    let saved = store::update(tx, caller.tenant_id, after, &caller.subject).await?;
    routing::adjust_load(tx, caller.tenant_id, Some(before), &saved).await?;
    let id = parse_id("ticket.id", &saved.id)?;
    let history: Vec<(String, String, String)> = changed
        .iter()
        .map(|f| {
            (
                f.clone(),
                ticket::field_text(before, f),
                ticket::field_text(&saved, f),
            )
        })
        .collect();
    store::record_changes(tx, caller.tenant_id, id, &caller.subject, &history).await?;
    publish_changes(state, tx, caller, before, &saved, &changed).await?;
    Ok(saved)
}

/// What follows a ticket change in its transaction: a ticket left waiting
/// is routed, the SLA clocks move (with what they reach published and
/// escalated), and an agent the change freed takes a waiting ticket.
pub(crate) async fn follow_change(
    state: &State,
    tx: &mut PgConnection,
    tenant: Uuid,
    before: Option<&Ticket>,
    saved: Ticket,
    message: Option<MessageKind>,
) -> kit::Result<Ticket> {
    let now = state.clock.now();
    let mut current = saved;
    if needs_routing(before, &current) {
        // The agent this change took the ticket from is locked already.
        let held = before.and_then(holder);
        if let Some(routed) = routing::route(state, tx, tenant, &current, now, held).await? {
            current = routed;
        }
    }
    let mut alerts = sla::follow(tx, tenant, before, &current, message, now).await?;
    if let Some(freed) = before.and_then(holder) {
        if holder(&current) != Some(freed) {
            alerts.extend(routing::fill(state, tx, tenant, freed, now).await?);
        }
    }
    sla::settle(state, tx, tenant, alerts, now).await?;
    Ok(current)
}

/// Adds a checked message (its author set) to a ticket locked as
/// `before`: stored, the first response stamped, a public reply queued for
/// mail, the status it moves the ticket to saved, routing and SLA clocks
/// followed, `ticket.replied` published. The message and the ticket after.
pub(crate) async fn record_message(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    before: &Ticket,
    message: &TicketMessage,
) -> kit::Result<(TicketMessage, Ticket)> {
    let tenant = caller.tenant_id;
    let id = parse_id("ticket.id", &before.id)?;
    let saved = store::insert_message(tx, tenant, id, message).await?;
    let kind = MessageKind::try_from(message.kind).unwrap_or_default();
    let public = kind == MessageKind::PublicReply;
    let first_response = public && store::mark_first_response(tx, tenant, id).await?;
    if public && state.mails_replies {
        let reply = parse_id("message.id", &saved.id)?;
        crate::store::mail::enqueue_if_mailed(
            tx,
            tenant,
            id,
            crate::domain::mail::MailKind::Reply,
            Some(reply),
            state.clock.now(),
        )
        .await?;
    }
    let mut current = before.clone();
    if let Some(status) = ticket::status_after_message(kind, before.status) {
        let after = Ticket {
            status,
            ..before.clone()
        };
        current = save_change(state, tx, caller, before, &after).await?;
    }
    let current = follow_change(state, tx, tenant, Some(before), current, Some(kind)).await?;
    let event = TicketReplied {
        ticket_id: saved.ticket_id.clone(),
        message_id: saved.id.clone(),
        kind: saved.kind,
        channel: saved.channel,
        author_id: saved.author_id.clone(),
        first_response,
        call: saved.call,
    };
    state
        .outbox
        .enqueue(tx, caller, id, version_of(&before.audit), &event)
        .await?;
    Ok((saved, current))
}

#[tonic::async_trait]
impl TicketService for TicketHandlers {
    async fn create_ticket(
        &self,
        request: Request<CreateTicketRequest>,
    ) -> Result<Response<CreateTicketResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateTicketRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut t = request
                .ticket
                .ok_or_else(|| Error::invalid("ticket", "is required"))?;
            t.id.clear();
            let mut v = Violations::new();
            ticket::normalize(&mut t, &mut v);
            if t.status != TicketStatus::New as i32 && t.status != TicketStatus::Open as i32 {
                v.add("ticket.status", "a new ticket is NEW or OPEN");
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "ticket";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find(
                    &mut tx,
                    tenant,
                    &kit::access::Scope::Tenant,
                    existing,
                    false,
                )
                .await?
                .ok_or_else(|| Error::not_found("ticket", existing))?;
                kit::access::check_replay(
                    &caller,
                    &found
                        .audit
                        .as_ref()
                        .map(|a| a.created_by.clone())
                        .unwrap_or_default(),
                    &found.assignee_id,
                    &found.group_id,
                )?;
                return Ok(CreateTicketResponse {
                    ticket: Some(found),
                });
            }
            check_parent(&mut tx, &caller, &t).await?;
            check_root_cause(&mut tx, tenant, &t).await?;
            check_custom_fields(&mut tx, &caller, &mut t).await?;
            check_requester(&self.0, &token, &mut t).await?;
            account_from_order(&mut tx, tenant, &mut t).await?;
            read_account_facts(&self.0, &token, &mut t).await?;
            let id = Uuid::now_v7();
            let saved = store::insert(&mut tx, tenant, id, &t, &caller.subject).await?;
            let number = saved.number.to_string();
            store::record_changes(
                &mut tx,
                tenant,
                id,
                &caller.subject,
                &[("created".into(), String::new(), number)],
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            let event = TicketCreated {
                ticket: Some(saved.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, 1, &event)
                .await?;
            if !saved.assignee_id.is_empty() || !saved.group_id.is_empty() {
                let event = TicketAssigned {
                    ticket_id: saved.id.clone(),
                    assignee_id: saved.assignee_id.clone(),
                    group_id: saved.group_id.clone(),
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, 1, &event)
                    .await?;
            }
            routing::adjust_load(&mut tx, tenant, None, &saved).await?;
            let saved = follow_change(&self.0, &mut tx, tenant, None, saved, None).await?;
            commit(tx).await?;
            Ok(CreateTicketResponse {
                ticket: Some(saved),
            })
        })
        .await
    }

    async fn get_ticket(
        &self,
        request: Request<GetTicketRequest>,
    ) -> Result<Response<GetTicketResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = visible(&mut tx, &caller, id, false).await?;
            Ok(GetTicketResponse { ticket: Some(t) })
        })
        .await
    }

    async fn list_tickets(
        &self,
        request: Request<ListTicketsRequest>,
    ) -> Result<Response<ListTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let mut v = Violations::new();
            let status = match TicketStatus::try_from(request.status) {
                Ok(TicketStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => {
                    v.add("status", "is not a known ticket status");
                    None
                }
            };
            let filter = TicketFilter {
                status,
                assignee: v
                    .check(optional_id("assignee_id", &request.assignee_id))
                    .flatten(),
                group: v
                    .check(optional_id("group_id", &request.group_id))
                    .flatten(),
                requester: v
                    .check(optional_id(
                        "requester_contact_id",
                        &request.requester_contact_id,
                    ))
                    .flatten(),
                account: v
                    .check(optional_id("account_id", &request.account_id))
                    .flatten(),
                open_only: request.open_only,
            };
            v.into_result()?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (tickets, next) = finish_page(rows, page.size, |t: &Ticket| {
                Uuid::parse_str(&t.id).unwrap_or_default()
            });
            Ok(ListTicketsResponse {
                tickets,
                page: page_response(next),
            })
        })
        .await
    }

    async fn update_ticket(
        &self,
        request: Request<UpdateTicketRequest>,
    ) -> Result<Response<UpdateTicketResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .ticket
                .ok_or_else(|| Error::invalid("ticket", "is required"))?;
            let id = parse_id("ticket.id", &input.id)?;
            let paths = request
                .update_mask
                .map(|mask| mask.paths)
                .unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = visible(&mut tx, &caller, id, true).await?;
            check_version(
                "ticket",
                &input.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_mask(&mut after, input, &paths, "update_mask")?;
            // Left out of a full update, the status and priority stay.
            if after.status == TicketStatus::Unspecified as i32 {
                after.status = before.status;
            }
            if after.priority == TicketPriority::Unspecified as i32 {
                after.priority = before.priority;
            }
            let mut v = Violations::new();
            ticket::normalize(&mut after, &mut v);
            if let Err(reason) = ticket::check_move(before.status, after.status) {
                v.add("ticket.status", reason);
            }
            if let Err(reason) = ticket::check_solution(before.status, &after) {
                v.add("ticket.root_cause_id", reason);
            }
            v.into_result()?;
            if before.status == TicketStatus::Closed as i32 && after != before {
                return Err(Error::FailedPrecondition(
                    crate::domain::actions::CLOSED.into(),
                ));
            }
            if after.parent_ticket_id != before.parent_ticket_id {
                check_parent(&mut tx, &caller, &after).await?;
            }
            if after.root_cause_id != before.root_cause_id {
                check_root_cause(&mut tx, caller.tenant_id, &after).await?;
            }
            if after.custom_fields != before.custom_fields {
                check_custom_fields(&mut tx, &caller, &mut after).await?;
            }
            if after.requester_contact_id != before.requester_contact_id {
                check_requester(&self.0, &token, &mut after).await?;
            }
            if after.order_id != before.order_id {
                account_from_order(&mut tx, caller.tenant_id, &mut after).await?;
            }
            if after.account_id != before.account_id {
                read_account_facts(&self.0, &token, &mut after).await?;
            }
            let mut saved = save_change(&self.0, &mut tx, &caller, &before, &after).await?;
            if saved != before {
                saved = follow_change(
                    &self.0,
                    &mut tx,
                    caller.tenant_id,
                    Some(&before),
                    saved,
                    None,
                )
                .await?;
            }
            commit(tx).await?;
            Ok(UpdateTicketResponse {
                ticket: Some(saved),
            })
        })
        .await
    }

    async fn add_message(
        &self,
        request: Request<AddMessageRequest>,
    ) -> Result<Response<AddMessageResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let fingerprint = kit::idempotency::fingerprint(&AddMessageRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut message = request
                .message
                .ok_or_else(|| Error::invalid("message", "is required"))?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let before = visible(&mut tx, &caller, id, true).await?;
            let entity = "ticket_message";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_message(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| Error::not_found("message", existing))?;
                return Ok(AddMessageResponse {
                    message: Some(found),
                });
            }
            let mut v = Violations::new();
            let integration = caller.has_role(kit::auth::Role::Service);
            ticket::normalize_message(&mut message, before.channel, integration, &mut v);
            let from_customer = integration && message.kind == MessageKind::CustomerMessage as i32;
            if from_customer && before.requester_contact_id.is_empty() {
                v.add("message.kind", "the ticket has no requester to write as");
            }
            v.into_result()?;
            if before.status == TicketStatus::Closed as i32 {
                return Err(Error::FailedPrecondition(
                    "a closed ticket takes no more messages; open a follow-up".into(),
                ));
            }
            message.author_id = if from_customer {
                before.requester_contact_id.clone()
            } else {
                caller.subject.clone()
            };
            let (saved, _) = record_message(&self.0, &mut tx, &caller, &before, &message).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
                parse_id("message.id", &saved.id)?,
            )
            .await?;
            commit(tx).await?;
            Ok(AddMessageResponse {
                message: Some(saved),
            })
        })
        .await
    }

    async fn list_messages(
        &self,
        request: Request<ListMessagesRequest>,
    ) -> Result<Response<ListMessagesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            visible(&mut tx, &caller, id, false).await?;
            let rows = store::messages(
                &mut tx,
                caller.tenant_id,
                id,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (messages, next) = finish_page(rows, page.size, |m: &TicketMessage| {
                Uuid::parse_str(&m.id).unwrap_or_default()
            });
            Ok(ListMessagesResponse {
                messages,
                page: page_response(next),
            })
        })
        .await
    }

    async fn merge_tickets(
        &self,
        request: Request<MergeTicketsRequest>,
    ) -> Result<Response<MergeTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let survivor = parse_id("survivor_id", &request.survivor_id)?;
            let merged = parse_id("merged_id", &request.merged_id)?;
            if survivor == merged {
                return Err(Error::invalid("merged_id", "is the survivor itself"));
            }
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            // Locked in id order, so two merges of one pair cannot deadlock.
            let (first, second) = (survivor.min(merged), survivor.max(merged));
            let a = visible(&mut tx, &caller, first, true).await?;
            let b = visible(&mut tx, &caller, second, true).await?;
            let (kept, gone) = if first == survivor { (a, b) } else { (b, a) };
            for (field, t) in [("survivor_id", &kept), ("merged_id", &gone)] {
                if t.status == TicketStatus::Closed as i32 {
                    return Err(Error::FailedPrecondition(format!(
                        "{field}: ticket #{} is closed",
                        t.number
                    )));
                }
            }
            let mut tags = kit::tags::union(&kept.tags, &gone.tags);
            tags.truncate(ticket::MAX_TAGS);
            store::merge(&mut tx, tenant, survivor, merged, &tags, &caller.subject).await?;
            store::record_changes(
                &mut tx,
                tenant,
                survivor,
                &caller.subject,
                &[("merged".into(), String::new(), gone.number.to_string())],
            )
            .await?;
            store::record_changes(
                &mut tx,
                tenant,
                merged,
                &caller.subject,
                &[
                    ("merged_into".into(), String::new(), kept.number.to_string()),
                    (
                        "status".into(),
                        ticket::field_text(&gone, "status"),
                        TicketStatus::Closed.as_str_name().to_owned(),
                    ),
                ],
            )
            .await?;
            let saved = visible(&mut tx, &caller, survivor, false).await?;
            let closed = visible(&mut tx, &caller, merged, false).await?;
            routing::adjust_load(&mut tx, tenant, Some(&gone), &closed).await?;
            follow_change(&self.0, &mut tx, tenant, Some(&gone), closed, None).await?;
            let event = TicketMerged {
                survivor_id: survivor.to_string(),
                merged_id: merged.to_string(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, survivor, version_of(&saved.audit), &event)
                .await?;
            let event = TicketStatusChanged {
                ticket_id: merged.to_string(),
                previous_status: gone.status,
                status: TicketStatus::Closed as i32,
            };
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    merged,
                    version_of(&gone.audit) + 1,
                    &event,
                )
                .await?;
            commit(tx).await?;
            Ok(MergeTicketsResponse {
                ticket: Some(saved),
            })
        })
        .await
    }

    async fn list_ticket_history(
        &self,
        request: Request<ListTicketHistoryRequest>,
    ) -> Result<Response<ListTicketHistoryResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            visible(&mut tx, &caller, id, false).await?;
            let rows = store::history(
                &mut tx,
                caller.tenant_id,
                id,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (changes, next) = finish_page(rows, page.size, |c: &TicketChange| {
                Uuid::parse_str(&c.id).unwrap_or_default()
            });
            Ok(ListTicketHistoryResponse {
                changes,
                page: page_response(next),
            })
        })
        .await
    }

    async fn link_tickets(
        &self,
        request: Request<LinkTicketsRequest>,
    ) -> Result<Response<LinkTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let mut v = Violations::new();
            let id = v.check(kit::input::required_id("ticket_id", &request.ticket_id));
            let other = v.check(kit::input::required_id(
                "other_ticket_id",
                &request.other_ticket_id,
            ));
            let kind = match LinkKind::try_from(request.kind) {
                Ok(LinkKind::Unspecified) => LinkKind::Related,
                Ok(kind) => kind,
                Err(_) => {
                    v.add("kind", "is not a known link kind");
                    LinkKind::Related
                }
            };
            if id.is_some() && id == other {
                v.add("other_ticket_id", "is the ticket itself");
            }
            v.into_result()?;
            let (Some(id), Some(other)) = (id, other) else {
                return Err(Error::invalid("ticket_id", "is required"));
            };
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let this = visible(&mut tx, &caller, id, false).await?;
            let that = visible(&mut tx, &caller, other, false)
                .await
                .map_err(|_| Error::invalid("other_ticket_id", "no such ticket"))?;
            store::link(&mut tx, tenant, id, other, kind, &caller.subject).await?;
            for (on, to, seen) in [(&this, &that, kind), (&that, &this, ticket::inverse(kind))] {
                let on_id = parse_id("ticket_id", &on.id)?;
                let text = format!("#{} {}", to.number, ticket::link_name(seen));
                store::record_changes(
                    &mut tx,
                    tenant,
                    on_id,
                    &caller.subject,
                    &[("link".into(), String::new(), text)],
                )
                .await?;
            }
            let link = store::links(&mut tx, tenant, &scope(&caller), id, 200)
                .await?
                .into_iter()
                .find(|l| l.other_ticket_id == that.id)
                .ok_or_else(|| Error::not_found("link", other))?;
            commit(tx).await?;
            Ok(LinkTicketsResponse { link: Some(link) })
        })
        .await
    }

    async fn list_ticket_links(
        &self,
        request: Request<ListTicketLinksRequest>,
    ) -> Result<Response<ListTicketLinksResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let mut tx = self.0.begin(&caller).await?;
            visible(&mut tx, &caller, id, false).await?;
            let links = store::links(&mut tx, caller.tenant_id, &scope(&caller), id, 200).await?;
            Ok(ListTicketLinksResponse { links })
        })
        .await
    }

    async fn get_ticket_context(
        &self,
        request: Request<GetTicketContextRequest>,
    ) -> Result<Response<GetTicketContextResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let t = visible(&mut tx, &caller, id, false).await?;
            let tenant = caller.tenant_id;
            let order = match Uuid::parse_str(&t.order_id) {
                Ok(order) => orders::find(&mut tx, tenant, order).await?,
                Err(_) => None,
            };
            let recent_orders = orders::recent(
                &mut tx,
                tenant,
                Uuid::parse_str(&t.requester_contact_id).ok(),
                Uuid::parse_str(&t.account_id).ok(),
                10,
            )
            .await?;
            Ok(GetTicketContextResponse {
                order,
                recent_orders,
            })
        })
        .await
    }

    async fn define_ticket_field(
        &self,
        request: Request<DefineTicketFieldRequest>,
    ) -> Result<Response<DefineTicketFieldResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut field = request
                .field
                .ok_or_else(|| Error::invalid("field", "is required"))?;
            let mut definition = fields::definition(&field);
            let mut v = Violations::new();
            kit::custom_fields::check_definition(&mut definition, &mut v);
            v.into_result()?;
            field.label = definition.label;
            field.options = definition.options;
            let mut tx = self.0.begin(&caller).await?;
            let known = fields::list(&mut tx, caller.tenant_id).await?;
            // The list holds them all: the limit is what it reads at most.
            if !known.iter().any(|f| f.key == field.key) && known.len() as i64 >= fields::MAX_FIELDS
            {
                return Err(Error::FailedPrecondition(format!(
                    "a tenant has at most {} ticket fields",
                    fields::MAX_FIELDS
                )));
            }
            let saved = fields::save(&mut tx, caller.tenant_id, &field, &caller.subject).await?;
            commit(tx).await?;
            Ok(DefineTicketFieldResponse { field: Some(saved) })
        })
        .await
    }

    async fn list_ticket_fields(
        &self,
        request: Request<ListTicketFieldsRequest>,
    ) -> Result<Response<ListTicketFieldsResponse>, Status> {
        handle(request, |caller, _request| async move {
            authorize(&caller, Action::Read)?;
            let mut tx = self.0.begin(&caller).await?;
            let fields = fields::list(&mut tx, caller.tenant_id).await?;
            Ok(ListTicketFieldsResponse { fields })
        })
        .await
    }

    async fn delete_ticket_field(
        &self,
        request: Request<DeleteTicketFieldRequest>,
    ) -> Result<Response<DeleteTicketFieldResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let key = request.key;
            delete_one(
                &self.0,
                &caller,
                "ticket field",
                &key,
                "",
                async |tx, tenant| fields::delete(tx, tenant, &key).await,
            )
            .await?;
            Ok(DeleteTicketFieldResponse {})
        })
        .await
    }

    async fn unlink_tickets(
        &self,
        request: Request<UnlinkTicketsRequest>,
    ) -> Result<Response<UnlinkTicketsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let other = parse_id("other_ticket_id", &request.other_ticket_id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let this = visible(&mut tx, &caller, id, false).await?;
            let that = visible(&mut tx, &caller, other, false).await?;
            if !store::unlink(&mut tx, tenant, id, other).await? {
                return Err(Error::not_found("link", other));
            }
            for (on, to) in [(&this, &that), (&that, &this)] {
                let on_id = parse_id("ticket_id", &on.id)?;
                store::record_changes(
                    &mut tx,
                    tenant,
                    on_id,
                    &caller.subject,
                    &[("link".into(), format!("#{}", to.number), String::new())],
                )
                .await?;
            }
            commit(tx).await?;
            Ok(UnlinkTicketsResponse {})
        })
        .await
    }
}
