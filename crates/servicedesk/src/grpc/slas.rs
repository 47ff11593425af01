//! SlaService: business calendars, SLA policies and a ticket's targets.

use crm_proto::crm::servicedesk::v1::sla_service_server::SlaService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{
    check_version, commit, handle, name_taken, named_page, page_response, version_of, SharedState,
};
use crate::domain::access::{authorize, Action};
use crate::domain::{calendar, optional_id, parse_id, sla};
use crate::events::sla::targets;
use crate::store::slas as store;

pub struct SlaHandlers(pub SharedState);

kit::field_mask!(
    apply_calendar_mask,
    changed_calendar_fields,
    BusinessCalendar,
    "calendar",
    [name, time_zone, hours, holidays]
);

kit::field_mask!(
    apply_policy_mask,
    changed_policy_fields,
    SlaPolicy,
    "policy",
    [
        name,
        position,
        active,
        priorities,
        types,
        channels,
        group_ids,
        tags,
        calendar_id,
        first_response_minutes,
        next_response_minutes,
        resolution_minutes,
        warning_percent,
        escalations,
    ]
);

/// The policy's calendar must be one of the tenant's.
async fn check_calendar(
    tx: &mut PgConnection,
    caller: &CallerContext,
    p: &SlaPolicy,
) -> kit::Result<()> {
    let id = optional_id("policy.calendar_id", &p.calendar_id)
        .map_err(|v| Error::InvalidArgument(vec![v]))?;
    if let Some(id) = id {
        if store::find_calendar(tx, caller.tenant_id, id, false)
            .await?
            .is_none()
        {
            return Err(Error::invalid("policy.calendar_id", "no such calendar"));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl SlaService for SlaHandlers {
    async fn create_calendar(
        &self,
        request: Request<CreateCalendarRequest>,
    ) -> Result<Response<CreateCalendarResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateCalendarRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut c = request
                .calendar
                .ok_or_else(|| Error::invalid("calendar", "is required"))?;
            let mut v = Violations::new();
            calendar::normalize(&mut c, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "business_calendar";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_calendar(&mut tx, tenant, existing, false)
                    .await?
                    .ok_or_else(|| Error::not_found("calendar", existing))?;
                return Ok(CreateCalendarResponse {
                    calendar: Some(found),
                });
            }
            let id = Uuid::now_v7();
            let saved = store::insert_calendar(&mut tx, tenant, id, &c, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "calendar", &c.name))?;
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
            Ok(CreateCalendarResponse {
                calendar: Some(saved),
            })
        })
        .await
    }

    async fn get_calendar(
        &self,
        request: Request<GetCalendarRequest>,
    ) -> Result<Response<GetCalendarResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let found = store::find_calendar(&mut tx, caller.tenant_id, id, false)
                .await?
                .ok_or_else(|| Error::not_found("calendar", id))?;
            Ok(GetCalendarResponse {
                calendar: Some(found),
            })
        })
        .await
    }

    async fn list_calendars(
        &self,
        request: Request<ListCalendarsRequest>,
    ) -> Result<Response<ListCalendarsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let (calendars, page) = named_page(
                &self.0,
                &caller,
                request.page.as_ref(),
                store::list_calendars,
                |c: &BusinessCalendar| (&c.name, &c.id),
            )
            .await?;
            Ok(ListCalendarsResponse { calendars, page })
        })
        .await
    }

    async fn update_calendar(
        &self,
        request: Request<UpdateCalendarRequest>,
    ) -> Result<Response<UpdateCalendarResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let input = request
                .calendar
                .ok_or_else(|| Error::invalid("calendar", "is required"))?;
            let id = parse_id("calendar.id", &input.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = store::find_calendar(&mut tx, caller.tenant_id, id, true)
                .await?
                .ok_or_else(|| Error::not_found("calendar", id))?;
            check_version(
                "calendar",
                &input.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_calendar_mask(&mut after, input, &paths, "update_mask")?;
            let mut v = Violations::new();
            calendar::normalize(&mut after, &mut v);
            v.into_result()?;
            if changed_calendar_fields(&before, &after).is_empty() {
                return Ok(UpdateCalendarResponse {
                    calendar: Some(before),
                });
            }
            let saved = store::update_calendar(&mut tx, caller.tenant_id, &after, &caller.subject)
                .await
                .map_err(|e| name_taken(e, "calendar", &after.name))?;
            commit(tx).await?;
            Ok(UpdateCalendarResponse {
                calendar: Some(saved),
            })
        })
        .await
    }

    async fn create_policy(
        &self,
        request: Request<CreatePolicyRequest>,
    ) -> Result<Response<CreatePolicyResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let fingerprint = kit::idempotency::fingerprint(&CreatePolicyRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut p = request
                .policy
                .ok_or_else(|| Error::invalid("policy", "is required"))?;
            let mut v = Violations::new();
            sla::normalize(&mut p, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let entity = "sla_policy";
            if let Some(existing) = kit::idempotency::replayed(
                &mut tx,
                tenant,
                entity,
                &request.request_id,
                &fingerprint,
            )
            .await?
            {
                let found = store::find_policy(&mut tx, tenant, existing, false)
                    .await?
                    .ok_or_else(|| Error::not_found("policy", existing))?;
                return Ok(CreatePolicyResponse {
                    policy: Some(found),
                });
            }
            check_calendar(&mut tx, &caller, &p).await?;
            let id = Uuid::now_v7();
            let saved = store::save_policy(&mut tx, tenant, id, &p, &caller.subject).await?;
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
            Ok(CreatePolicyResponse {
                policy: Some(saved),
            })
        })
        .await
    }

    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let found = store::find_policy(&mut tx, caller.tenant_id, id, false)
                .await?
                .ok_or_else(|| Error::not_found("policy", id))?;
            Ok(GetPolicyResponse {
                policy: Some(found),
            })
        })
        .await
    }

    async fn list_policies(
        &self,
        request: Request<ListPoliciesRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<(i32, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_policies(
                &mut tx,
                caller.tenant_id,
                false,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (policies, next) = finish_page(rows, page.size, |p: &SlaPolicy| {
                (p.position, Uuid::parse_str(&p.id).unwrap_or_default())
            });
            Ok(ListPoliciesResponse {
                policies,
                page: page_response(next),
            })
        })
        .await
    }

    async fn update_policy(
        &self,
        request: Request<UpdatePolicyRequest>,
    ) -> Result<Response<UpdatePolicyResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let input = request
                .policy
                .ok_or_else(|| Error::invalid("policy", "is required"))?;
            let id = parse_id("policy.id", &input.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = store::find_policy(&mut tx, caller.tenant_id, id, true)
                .await?
                .ok_or_else(|| Error::not_found("policy", id))?;
            check_version(
                "policy",
                &input.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut after = before.clone();
            apply_policy_mask(&mut after, input, &paths, "update_mask")?;
            let mut v = Violations::new();
            sla::normalize(&mut after, &mut v);
            v.into_result()?;
            if changed_policy_fields(&before, &after).is_empty() {
                return Ok(UpdatePolicyResponse {
                    policy: Some(before),
                });
            }
            check_calendar(&mut tx, &caller, &after).await?;
            let saved =
                store::save_policy(&mut tx, caller.tenant_id, id, &after, &caller.subject).await?;
            commit(tx).await?;
            Ok(UpdatePolicyResponse {
                policy: Some(saved),
            })
        })
        .await
    }

    async fn get_ticket_sla(
        &self,
        request: Request<GetTicketSlaRequest>,
    ) -> Result<Response<GetTicketSlaResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("ticket_id", &request.ticket_id)?;
            let now = self.0.clock.now();
            let mut tx = self.0.begin(&caller).await?;
            super::tickets::visible(&mut tx, &caller, id, false).await?;
            let targets = targets(&mut tx, caller.tenant_id, id, now).await?;
            Ok(GetTicketSlaResponse {
                targets,
                as_of: Some(kit::time::to_timestamp(now)),
            })
        })
        .await
    }
}
