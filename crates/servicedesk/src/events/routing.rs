//! Routing in the transaction of a ticket change: agents' loads follow
//! every change of a ticket's holder ([`adjust_load`], from the store's
//! write path), a ticket left waiting in an automatic group is given to
//! an eligible agent ([`route`]), and an agent with a place freed takes
//! the most urgent waiting ticket they can ([`fill`]).
//!
//! Safe with any number of pods: an agent is taken with a conditional
//! update (`open_tickets < capacity`) whose row lock lasts until the
//! transaction ends, and the count moves in the same transaction, so two
//! transactions can never fill one free place; a ticket is changed only
//! under its own row lock (waiting tickets are taken with `SKIP LOCKED`),
//! so it is never given to two agents.
//!
//! Without deadlocks: a transaction waits for an agent's lock only if that
//! agent sorts after every agent it already holds (two loads move in id
//! order; a candidate sorting before a held agent is skipped if another
//! transaction holds it), and no transaction holding an agent waits for a
//! ticket (waiting and handed-back tickets are taken with `SKIP LOCKED`).

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{AssignmentMode, Availability, Ticket};
use kit::auth::CallerContext;
use sqlx::PgConnection;
use uuid::Uuid;

use super::sla::{self, Alert, HoursCache};
use crate::domain::routing::{covers, holder, order, skill_map};
use crate::grpc::{tickets::save_change, State};
use crate::store::{routing as store, tickets};

/// Most waiting tickets an agent's freed places are looked for in.
const WAITING_LOOKED_AT: i64 = 100;

fn system(tenant: Uuid) -> CallerContext {
    CallerContext::system(crate::config::SERVICE, tenant)
}

/// Moves the open-ticket counts of the agents a change takes a ticket
/// from and gives it to.
pub async fn adjust_load(
    tx: &mut PgConnection,
    tenant: Uuid,
    before: Option<&Ticket>,
    after: &Ticket,
) -> sqlx::Result<()> {
    let (was, is) = (before.and_then(holder), holder(after));
    if was == is {
        return Ok(());
    }
    let mut moves: Vec<(Uuid, i32)> = was
        .map(|user| (user, -1))
        .into_iter()
        .chain(is.map(|user| (user, 1)))
        .collect();
    moves.sort();
    for (user, delta) in moves {
        store::add_load(tx, tenant, user, delta).await?;
    }
    Ok(())
}

/// Whether an agent works at `now` by their schedule.
async fn on_shift(
    tx: &mut PgConnection,
    tenant: Uuid,
    cache: &mut HoursCache,
    calendar: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    Ok(calendar.is_none() || cache.get(tx, tenant, calendar).await?.is_working(now))
}

/// Gives `t` (open, unassigned, in a group) to an eligible agent by its
/// group's mode; the ticket as saved, or `None` if it waits. `held` is the
/// highest agent the transaction already holds.
pub async fn route(
    state: &State,
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    now: DateTime<Utc>,
    held: Option<Uuid>,
) -> kit::Result<Option<Ticket>> {
    let Ok(group) = Uuid::parse_str(&t.group_id) else {
        return Ok(None);
    };
    let mode = match store::find_group(tx, tenant, group).await? {
        Some(g) => AssignmentMode::try_from(g.mode).unwrap_or_default(),
        None => return Ok(None),
    };
    if !matches!(
        mode,
        AssignmentMode::RoundRobin | AssignmentMode::LeastLoaded
    ) {
        return Ok(None);
    }
    let required = skill_map(&t.required_skills);
    let mut cache = HoursCache::default();
    let mut eligible = Vec::new();
    for candidate in store::candidates(tx, tenant, group).await? {
        if covers(&candidate.skills, &required)
            && on_shift(tx, tenant, &mut cache, candidate.calendar_id, now).await?
        {
            eligible.push(candidate);
        }
    }
    order(mode, &mut eligible);
    for candidate in eligible {
        let wait = held.is_none_or(|held| candidate.user_id >= held);
        if store::take(tx, tenant, candidate.user_id, now, wait).await? {
            let after = Ticket {
                assignee_id: candidate.user_id.to_string(),
                ..t.clone()
            };
            let saved = save_change(state, tx, &system(tenant), t, &after).await?;
            return Ok(Some(saved));
        }
    }
    Ok(None)
}

/// Gives waiting tickets to `user` while they have free places; returns
/// the SLA stages the changes reached.
pub async fn fill(
    state: &State,
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> kit::Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    let Some(agent) = store::find_agent(tx, tenant, user, false).await? else {
        return Ok(alerts);
    };
    let mut cache = HoursCache::default();
    let calendar = Uuid::parse_str(&agent.calendar_id).ok();
    if agent.availability != Availability::Online as i32
        || agent.open_tickets >= agent.capacity
        || !on_shift(tx, tenant, &mut cache, calendar, now).await?
    {
        return Ok(alerts);
    }
    let groups: Vec<Uuid> = agent
        .group_ids
        .iter()
        .filter_map(|g| Uuid::parse_str(g).ok())
        .collect();
    let held = skill_map(&agent.skills);
    for (id, required) in store::waiting_for(tx, tenant, &groups, WAITING_LOOKED_AT).await? {
        if !covers(&held, &required.0) {
            continue;
        }
        // The caller holds this agent or no agent sorting after it.
        if !store::take(tx, tenant, user, now, true).await? {
            break;
        }
        let Some(before) =
            tickets::find(tx, tenant, &kit::access::Scope::Tenant, id, false).await?
        else {
            continue;
        };
        let after = Ticket {
            assignee_id: user.to_string(),
            ..before.clone()
        };
        let saved = save_change(state, tx, &system(tenant), &before, &after).await?;
        alerts.extend(sla::follow(tx, tenant, Some(&before), &saved, None, now).await?);
    }
    Ok(alerts)
}

/// An agent gone offline hands back their open tickets of the groups that
/// ask for it; each is routed again (or waits).
pub async fn hand_back(
    state: &State,
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> kit::Result<Vec<Alert>> {
    let mut alerts = Vec::new();
    let mut highest = user;
    for id in store::held_in_reassigning_groups(tx, tenant, user).await? {
        let Some(before) =
            tickets::find(tx, tenant, &kit::access::Scope::Tenant, id, false).await?
        else {
            continue;
        };
        let unassigned = Ticket {
            assignee_id: String::new(),
            ..before.clone()
        };
        let mut saved = save_change(state, tx, &system(tenant), &before, &unassigned).await?;
        if let Some(routed) = route(state, tx, tenant, &saved, now, Some(highest)).await? {
            if let Ok(taken) = Uuid::parse_str(&routed.assignee_id) {
                highest = highest.max(taken);
            }
            saved = routed;
        }
        alerts.extend(sla::follow(tx, tenant, Some(&before), &saved, None, now).await?);
    }
    Ok(alerts)
}
