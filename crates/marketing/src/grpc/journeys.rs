//! JourneyService: journeys and enrolments. Enrolments move in
//! `events::journeys`.

use std::collections::HashSet;

use crm_proto::crm::marketing::v1::journey_service_server::JourneyService;
use crm_proto::crm::marketing::v1::*;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::token_of;
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::audience::{contacts_by_id, segment_page};
use super::campaigns::parse_ids;
use super::messages::check_send_parts;
use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, Action};
use crate::domain::{journey, optional_id, parse_id};
use crate::store::journeys as store;

pub struct JourneyHandlers(pub SharedState);

/// Contacts enrolled per statement (and per `journey.enrolled` batch).
const CHUNK: usize = 1000;

fn not_found(id: Uuid) -> Error {
    Error::not_found("journey", id)
}

#[tonic::async_trait]
impl JourneyService for JourneyHandlers {
    async fn create_journey(
        &self,
        request: Request<CreateJourneyRequest>,
    ) -> Result<Response<CreateJourneyResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateJourneyRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut j = request
                .journey
                .ok_or_else(|| Error::invalid("journey", "is required"))?;
            let mut v = Violations::new();
            journey::check(&mut j, &mut v);
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "journey",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(existing) = replayed {
                let j = store::find(&mut tx, tenant, existing)
                    .await?
                    .ok_or_else(|| not_found(existing))?;
                return Ok(CreateJourneyResponse { journey: Some(j) });
            }
            let mut v = Violations::new();
            for (i, s) in j.steps.iter().enumerate() {
                if s.kind == StepKind::Send as i32 {
                    let at = format!("journey.steps[{i}]");
                    let (template, identity) = (&s.template_id, &s.sender_identity_id);
                    check_send_parts(&mut tx, tenant, &at, template, identity, &mut v).await?;
                }
            }
            v.into_result()?;
            let id = Uuid::now_v7();
            let saved = store::insert(&mut tx, tenant, id, &j, &caller.subject).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "journey",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateJourneyResponse {
                journey: Some(saved),
            })
        })
        .await
    }

    async fn get_journey(
        &self,
        request: Request<GetJourneyRequest>,
    ) -> Result<Response<GetJourneyResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let j = store::find(&mut tx, caller.tenant_id, id)
                .await?
                .ok_or_else(|| not_found(id))?;
            Ok(GetJourneyResponse { journey: Some(j) })
        })
        .await
    }

    async fn list_journeys(
        &self,
        request: Request<ListJourneysRequest>,
    ) -> Result<Response<ListJourneysResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows =
                store::list(&mut tx, caller.tenant_id, page.after, page.fetch_limit()).await?;
            let (journeys, next) = finish_page(rows, page.size, |j: &Journey| {
                Uuid::parse_str(&j.id).unwrap_or_default()
            });
            Ok(ListJourneysResponse {
                journeys,
                page: page_response(next),
            })
        })
        .await
    }

    async fn set_journey_status(
        &self,
        request: Request<SetJourneyStatusRequest>,
    ) -> Result<Response<SetJourneyStatusResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let status = match JourneyStatus::try_from(request.status) {
                Ok(status @ (JourneyStatus::Active | JourneyStatus::Paused)) => status,
                _ => {
                    return Err(Error::invalid(
                        "status",
                        "must be JOURNEY_STATUS_ACTIVE or JOURNEY_STATUS_PAUSED",
                    ))
                }
            };
            let mut tx = self.0.begin(&caller).await?;
            let j = store::set_status(&mut tx, caller.tenant_id, id, status, &caller.subject)
                .await?
                .ok_or_else(|| not_found(id))?;
            commit(tx).await?;
            Ok(SetJourneyStatusResponse { journey: Some(j) })
        })
        .await
    }

    async fn enrol_contacts(
        &self,
        request: Request<EnrolContactsRequest>,
    ) -> Result<Response<EnrolContactsResponse>, Status> {
        let token = token_of(&request);
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("journey_id", &request.journey_id)?;
            let mut v = Violations::new();
            let segment = v
                .check(optional_id("segment_id", &request.segment_id))
                .flatten();
            let named = parse_ids("contact_ids", &request.contact_ids, &mut v);
            if segment.is_some() != request.contact_ids.is_empty() {
                v.add("contact_ids", "name contacts or a segment_id, not both");
            }
            if named.len() > CHUNK {
                v.add("contact_ids", format!("at most {CHUNK} contacts"));
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            {
                let mut tx = self.0.begin(&caller).await?;
                let j = store::find(&mut tx, tenant, id)
                    .await?
                    .ok_or_else(|| not_found(id))?;
                if j.status != JourneyStatus::Active as i32 {
                    return Err(Error::FailedPrecondition(
                        "the journey is paused; resume it to enrol".into(),
                    ));
                }
            }
            // The contacts the caller can see, with their rights.
            let contacts: Vec<Uuid> = match segment {
                None => {
                    let found = contacts_by_id(&self.0, &token, &named).await?;
                    let seen: HashSet<&str> = found.iter().map(|c| c.id.as_str()).collect();
                    if let Some(i) = request
                        .contact_ids
                        .iter()
                        .position(|c| !seen.contains(c.as_str()))
                    {
                        return Err(Error::invalid(
                            format!("contact_ids[{i}]"),
                            "no such contact",
                        ));
                    }
                    named
                }
                Some(segment) => {
                    let mut ids = Vec::new();
                    let mut next = String::new();
                    loop {
                        let (page, after) =
                            segment_page(&self.0, &token, "segment_id", &segment.to_string(), next)
                                .await?;
                        ids.extend(page.iter().filter_map(|c| Uuid::parse_str(&c.id).ok()));
                        if after.is_empty() {
                            break ids;
                        }
                        next = after;
                    }
                }
            };
            let mut unique = contacts.clone();
            unique.sort_unstable();
            unique.dedup();
            let mut tx = self.0.begin(&caller).await?;
            let mut enrolled = 0;
            for chunk in unique.chunks(CHUNK) {
                let made = store::enrol(&mut tx, tenant, id, chunk).await?;
                enrolled += made.len() as i64;
                let events: Vec<(Uuid, i64, JourneyEnrolled)> = made
                    .into_iter()
                    .map(|e| {
                        let id = Uuid::parse_str(&e.id).unwrap_or_default();
                        (id, 1, JourneyEnrolled { enrolment: Some(e) })
                    })
                    .collect();
                self.0
                    .outbox
                    .enqueue_many(
                        &mut tx,
                        &caller,
                        events.iter().map(|(id, v, e)| (*id, *v, e)),
                    )
                    .await?;
            }
            commit(tx).await?;
            Ok(EnrolContactsResponse {
                enrolled,
                already_enrolled: unique.len() as i64 - enrolled,
            })
        })
        .await
    }

    async fn list_enrolments(
        &self,
        request: Request<ListEnrolmentsRequest>,
    ) -> Result<Response<ListEnrolmentsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("journey_id", &request.journey_id)?;
            let contact = optional_id("contact_id", &request.contact_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let status = match EnrolmentStatus::try_from(request.status) {
                Ok(EnrolmentStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known enrolment status")),
            };
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            if store::find(&mut tx, tenant, id).await?.is_none() {
                return Err(not_found(id));
            }
            let rows = store::list_enrolments(
                &mut tx,
                tenant,
                id,
                status,
                contact,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (enrolments, next) = finish_page(rows, page.size, |e: &Enrolment| {
                Uuid::parse_str(&e.id).unwrap_or_default()
            });
            Ok(ListEnrolmentsResponse {
                enrolments,
                page: page_response(next),
            })
        })
        .await
    }
}
