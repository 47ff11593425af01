//! RoutingService: agents, their availability, and groups' modes.

use crm_proto::crm::servicedesk::v1::routing_service_server::RoutingService;
use crm_proto::crm::servicedesk::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::Error;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{check_version, commit, handle, page_response, version_of, SharedState, State};
use crate::domain::access::{authorize, Action};
use crate::domain::routing::{normalize_skills, MAX_CAPACITY, MAX_GROUPS};
use crate::domain::{optional_id, parse_id};
use crate::events::{routing, sla};
use crate::store::{routing as store, slas};

pub struct RoutingHandlers(pub SharedState);

/// Agents a group change may concern at most (their free places are
/// offered to the group's waiting tickets).
const AGENTS_FILLED: i64 = 500;

fn normalize_agent(a: &mut Agent, v: &mut Violations) {
    v.check(kit::input::required_id("agent.user_id", &a.user_id));
    normalize_skills("agent.skills", &mut a.skills, v);
    if !(1..=MAX_CAPACITY).contains(&a.capacity) {
        v.add(
            "agent.capacity",
            format!("must be 1-{MAX_CAPACITY} open tickets"),
        );
    }
    if a.group_ids.len() > MAX_GROUPS {
        v.add("agent.group_ids", format!("at most {MAX_GROUPS} groups"));
    }
    for (i, group) in a.group_ids.iter().enumerate() {
        v.check(kit::input::required_id(
            &format!("agent.group_ids[{i}]"),
            group,
        ));
    }
    a.group_ids.sort();
    a.group_ids.dedup();
    v.check(optional_id("agent.calendar_id", &a.calendar_id));
}

/// Offers `user`'s free places to waiting tickets and publishes what
/// their SLA clocks reach.
async fn fill(
    state: &State,
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    user: Uuid,
) -> kit::Result<()> {
    let now = state.clock.now();
    let alerts = routing::fill(state, tx, tenant, user, now).await?;
    sla::settle(state, tx, tenant, alerts, now).await
}

fn may_set_availability(caller: &CallerContext, user: Uuid) -> kit::Result<()> {
    if caller.user_id == Some(user) {
        authorize(caller, Action::Write)
    } else {
        authorize(caller, Action::Configure).map_err(|_| {
            Error::PermissionDenied(
                "only managers and admins set another agent's availability".into(),
            )
        })
    }
}

#[tonic::async_trait]
impl RoutingService for RoutingHandlers {
    async fn put_agent(
        &self,
        request: Request<PutAgentRequest>,
    ) -> Result<Response<PutAgentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let mut agent = request
                .agent
                .ok_or_else(|| Error::invalid("agent", "is required"))?;
            let mut v = Violations::new();
            normalize_agent(&mut agent, &mut v);
            v.into_result()?;
            let user = parse_id("agent.user_id", &agent.user_id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let existing = store::find_agent(&mut tx, tenant, user, true).await?;
            if let Some(existing) = &existing {
                check_version(
                    "agent",
                    &agent.user_id,
                    request.expected_version,
                    version_of(&existing.audit),
                )?;
            }
            if let Some(calendar) = optional_id("agent.calendar_id", &agent.calendar_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?
            {
                if slas::find_calendar(&mut tx, tenant, calendar, false)
                    .await?
                    .is_none()
                {
                    return Err(Error::invalid("agent.calendar_id", "no such calendar"));
                }
            }
            store::put_agent(&mut tx, tenant, &agent, &caller.subject).await?;
            fill(&self.0, &mut tx, tenant, user).await?;
            let saved = store::find_agent(&mut tx, tenant, user, false)
                .await?
                .ok_or_else(|| Error::not_found("agent", user))?;
            commit(tx).await?;
            Ok(PutAgentResponse { agent: Some(saved) })
        })
        .await
    }

    async fn get_agent(
        &self,
        request: Request<GetAgentRequest>,
    ) -> Result<Response<GetAgentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let user = parse_id("user_id", &request.user_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let agent = store::find_agent(&mut tx, caller.tenant_id, user, false)
                .await?
                .ok_or_else(|| Error::not_found("agent", user))?;
            Ok(GetAgentResponse { agent: Some(agent) })
        })
        .await
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let group = optional_id("group_id", &request.group_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_agents(
                &mut tx,
                caller.tenant_id,
                group,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (agents, next) = finish_page(rows, page.size, |a: &Agent| {
                Uuid::parse_str(&a.user_id).unwrap_or_default()
            });
            Ok(ListAgentsResponse {
                agents,
                page: page_response(next),
            })
        })
        .await
    }

    async fn set_availability(
        &self,
        request: Request<SetAvailabilityRequest>,
    ) -> Result<Response<SetAvailabilityResponse>, Status> {
        handle(request, |caller, request| async move {
            let user = parse_id("user_id", &request.user_id)?;
            may_set_availability(&caller, user)?;
            let availability = match Availability::try_from(request.availability) {
                Ok(Availability::Unspecified) | Err(_) => {
                    return Err(Error::invalid(
                        "availability",
                        "must be ONLINE, AWAY or OFFLINE",
                    ))
                }
                Ok(a) => a,
            };
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let before = store::find_agent(&mut tx, tenant, user, true)
                .await?
                .ok_or_else(|| Error::not_found("agent", user))?;
            store::set_availability(&mut tx, tenant, user, availability, &caller.subject).await?;
            if before.availability != availability as i32 {
                match availability {
                    Availability::Online => fill(&self.0, &mut tx, tenant, user).await?,
                    Availability::Offline => {
                        let now = self.0.clock.now();
                        let alerts =
                            routing::hand_back(&self.0, &mut tx, tenant, user, now).await?;
                        sla::settle(&self.0, &mut tx, tenant, alerts, now).await?;
                    }
                    _ => {}
                }
            }
            let agent = store::find_agent(&mut tx, tenant, user, false)
                .await?
                .ok_or_else(|| Error::not_found("agent", user))?;
            commit(tx).await?;
            Ok(SetAvailabilityResponse { agent: Some(agent) })
        })
        .await
    }

    async fn put_group_routing(
        &self,
        request: Request<PutGroupRoutingRequest>,
    ) -> Result<Response<PutGroupRoutingResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let g = request
                .routing
                .ok_or_else(|| Error::invalid("routing", "is required"))?;
            let mut v = Violations::new();
            let group = v.check(kit::input::required_id("routing.group_id", &g.group_id));
            if matches!(
                AssignmentMode::try_from(g.mode),
                Ok(AssignmentMode::Unspecified) | Err(_)
            ) {
                v.add(
                    "routing.mode",
                    "must be MANUAL, ROUND_ROBIN or LEAST_LOADED",
                );
            }
            v.into_result()?;
            let group = group.ok_or_else(|| Error::invalid("routing.group_id", "is required"))?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let saved = store::put_group(&mut tx, tenant, &g, &caller.subject).await?;
            // Waiting tickets of a group that now routes go to free agents.
            for agent in
                store::list_agents(&mut tx, tenant, Some(group), None, AGENTS_FILLED).await?
            {
                fill(
                    &self.0,
                    &mut tx,
                    tenant,
                    parse_id("user_id", &agent.user_id)?,
                )
                .await?;
            }
            commit(tx).await?;
            Ok(PutGroupRoutingResponse {
                routing: Some(saved),
            })
        })
        .await
    }

    async fn get_group_routing(
        &self,
        request: Request<GetGroupRoutingRequest>,
    ) -> Result<Response<GetGroupRoutingResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let group = parse_id("group_id", &request.group_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let found = store::find_group(&mut tx, caller.tenant_id, group)
                .await?
                .ok_or_else(|| Error::not_found("group routing", group))?;
            Ok(GetGroupRoutingResponse {
                routing: Some(found),
            })
        })
        .await
    }
}
