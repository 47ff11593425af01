//! Agents, groups' assignment modes, and the queries routing decides on.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{Agent, AssignmentMode, Availability, GroupRouting};
use kit::time::to_optional_timestamp;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::routing::{skill_list, skill_map, Candidate, Skills};

const AGENT_COLUMNS: &str = "user_id, skills, group_ids, capacity, calendar_id, availability, open_tickets, last_assigned_at, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
struct AgentRow {
    user_id: Uuid,
    skills: Json<Skills>,
    group_ids: Vec<Uuid>,
    capacity: i32,
    calendar_id: Option<Uuid>,
    availability: i16,
    open_tickets: i32,
    last_assigned_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<AgentRow> for Agent {
    fn from(r: AgentRow) -> Self {
        Agent {
            user_id: r.user_id.to_string(),
            skills: skill_list(&r.skills.0),
            group_ids: r.group_ids.iter().map(Uuid::to_string).collect(),
            capacity: r.capacity,
            calendar_id: id_text(r.calendar_id),
            availability: r.availability.into(),
            open_tickets: r.open_tickets,
            last_assigned_at: to_optional_timestamp(r.last_assigned_at),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

/// Registers an agent (offline, with the open tickets they already hold
/// counted) or changes their skills, groups, capacity and schedule.
pub async fn put_agent(
    tx: &mut PgConnection,
    tenant: Uuid,
    a: &Agent,
    actor: &str,
) -> sqlx::Result<Agent> {
    let groups: Vec<Uuid> = a.group_ids.iter().filter_map(|g| checked_id(g)).collect();
    let row: AgentRow = sqlx::query_as(&format!(
        "INSERT INTO agents (tenant_id, user_id, skills, group_ids, capacity, calendar_id, availability, open_tickets, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, \
                 (SELECT count(*) FROM tickets WHERE tenant_id = $1 AND owner_id = $2 AND status NOT IN (6, 7)), $8, $8) \
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET skills = $3, group_ids = $4, capacity = $5, calendar_id = $6, \
         updated_at = now(), updated_by = $8, version = agents.version + 1 \
         RETURNING {AGENT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&a.user_id))
    .bind(Json(skill_map(&a.skills)))
    .bind(groups)
    .bind(a.capacity)
    .bind(checked_id(&a.calendar_id))
    .bind(Availability::Offline as i16)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_agent(
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Agent>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<AgentRow> = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 AND user_id = $2{lock}"
    ))
    .bind(tenant)
    .bind(user)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Agent::from))
}

pub async fn list_agents(
    tx: &mut PgConnection,
    tenant: Uuid,
    group: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Agent>> {
    let rows: Vec<AgentRow> = sqlx::query_as(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 \
         AND ($2::uuid IS NULL OR group_ids @> ARRAY[$2]) AND ($3::uuid IS NULL OR user_id > $3) \
         ORDER BY user_id LIMIT $4"
    ))
    .bind(tenant)
    .bind(group)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Agent::from).collect())
}

pub async fn set_availability(
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    availability: Availability,
    actor: &str,
) -> sqlx::Result<Agent> {
    let row: AgentRow = sqlx::query_as(&format!(
        "UPDATE agents SET availability = $3, updated_at = now(), updated_by = $4, version = version + 1 \
         WHERE tenant_id = $1 AND user_id = $2 RETURNING {AGENT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(user)
    .bind(availability as i16)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// Moves an agent's count of open tickets (no row: not an agent).
pub async fn add_load(
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    delta: i32,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE agents SET open_tickets = greatest(open_tickets + $3, 0) WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(user)
    .bind(delta)
    .execute(tx)
    .await?;
    Ok(())
}

/// Online agents of `group` under capacity, as read now (the final check
/// is [`take`]).
pub async fn candidates(
    tx: &mut PgConnection,
    tenant: Uuid,
    group: Uuid,
) -> sqlx::Result<Vec<Candidate>> {
    let rows: Vec<CandidateRow> = sqlx::query_as(
        "SELECT user_id, skills, open_tickets, calendar_id, last_assigned_at FROM agents \
         WHERE tenant_id = $1 AND group_ids @> ARRAY[$2] AND availability = $3 AND open_tickets < capacity",
    )
    .bind(tenant)
    .bind(group)
    .bind(Availability::Online as i16)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            user_id: r.user_id,
            skills: r.skills.0,
            open_tickets: r.open_tickets,
            calendar_id: r.calendar_id,
            last_assigned_at: r.last_assigned_at,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct CandidateRow {
    user_id: Uuid,
    skills: Json<Skills>,
    open_tickets: i32,
    calendar_id: Option<Uuid>,
    last_assigned_at: Option<DateTime<Utc>>,
}

/// Locks an agent who is still online and under capacity, stamping the
/// assignment; false if they no longer are. The row lock is held until
/// the transaction ends, so no other transaction can fill the same free
/// place in between (a concurrent one waits, then sees the new count).
/// Without `wait`, an agent another transaction holds counts as taken:
/// the caller holds an agent lock and waiting here could close a cycle.
pub async fn take(
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
    wait: bool,
) -> sqlx::Result<bool> {
    let skip = if wait { "" } else { " SKIP LOCKED" };
    let taken = sqlx::query(&format!(
        "UPDATE agents SET last_assigned_at = $3 WHERE tenant_id = $1 AND user_id = \
         (SELECT user_id FROM agents WHERE tenant_id = $1 AND user_id = $2 \
          AND availability = $4 AND open_tickets < capacity FOR UPDATE{skip})"
    ))
    .bind(tenant)
    .bind(user)
    .bind(now)
    .bind(Availability::Online as i16)
    .execute(tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Open, unassigned tickets of the agent's automatically routed groups,
/// most urgent and oldest first, locked (others skip them).
pub async fn waiting_for(
    tx: &mut PgConnection,
    tenant: Uuid,
    groups: &[Uuid],
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Json<Skills>)>> {
    sqlx::query_as(
        "SELECT t.id, t.required_skills FROM tickets t \
         JOIN group_routing g ON g.tenant_id = t.tenant_id AND g.group_id = t.team_id AND g.mode <> $3 \
         WHERE t.tenant_id = $1 AND t.team_id = ANY($2) AND t.owner_id IS NULL AND t.status NOT IN (6, 7) \
         ORDER BY t.priority DESC, t.id LIMIT $4 FOR UPDATE OF t SKIP LOCKED",
    )
    .bind(tenant)
    .bind(groups)
    .bind(AssignmentMode::Manual as i16)
    .bind(limit)
    .fetch_all(tx)
    .await
}

/// Open tickets an agent holds in groups that take them back when the
/// agent goes offline (one being changed right now stays with them: the
/// caller holds the agent's lock, which that change may be waiting for).
pub async fn held_in_reassigning_groups(
    tx: &mut PgConnection,
    tenant: Uuid,
    user: Uuid,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT t.id FROM tickets t \
         JOIN group_routing g ON g.tenant_id = t.tenant_id AND g.group_id = t.team_id AND g.reassign_when_offline \
         WHERE t.tenant_id = $1 AND t.owner_id = $2 AND t.status NOT IN (6, 7) ORDER BY t.id FOR UPDATE OF t SKIP LOCKED",
    )
    .bind(tenant)
    .bind(user)
    .fetch_all(tx)
    .await
}

// ---- group routing

#[derive(sqlx::FromRow)]
struct GroupRow {
    group_id: Uuid,
    mode: i16,
    reassign_when_offline: bool,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<GroupRow> for GroupRouting {
    fn from(r: GroupRow) -> Self {
        GroupRouting {
            group_id: r.group_id.to_string(),
            mode: r.mode.into(),
            reassign_when_offline: r.reassign_when_offline,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

const GROUP_COLUMNS: &str = "group_id, mode, reassign_when_offline, created_at, created_by, updated_at, updated_by, version";

pub async fn put_group(
    tx: &mut PgConnection,
    tenant: Uuid,
    g: &GroupRouting,
    actor: &str,
) -> sqlx::Result<GroupRouting> {
    let row: GroupRow = sqlx::query_as(&format!(
        "INSERT INTO group_routing (tenant_id, group_id, mode, reassign_when_offline, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (tenant_id, group_id) DO UPDATE SET mode = $3, reassign_when_offline = $4, \
         updated_at = now(), updated_by = $5, version = group_routing.version + 1 RETURNING {GROUP_COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&g.group_id))
    .bind(g.mode as i16)
    .bind(g.reassign_when_offline)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_group(
    tx: &mut PgConnection,
    tenant: Uuid,
    group: Uuid,
) -> sqlx::Result<Option<GroupRouting>> {
    let row: Option<GroupRow> = sqlx::query_as(&format!(
        "SELECT {GROUP_COLUMNS} FROM group_routing WHERE tenant_id = $1 AND group_id = $2"
    ))
    .bind(tenant)
    .bind(group)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(GroupRouting::from))
}
