//! Tickets, their numbers, messages and history.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{
    AccountFacts, Attachment, CallDetails, LinkKind, Ticket, TicketChange, TicketLink,
    TicketMessage, TicketStatus,
};
use kit::access::Scope;
use kit::time::{from_optional_timestamp, to_optional_timestamp, to_timestamp};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::routing::{self, Skills};
use crate::domain::ticket::inverse;
use sqlx::types::Json;

pub(super) const COLUMNS: &str = "id, number, subject, description, type, priority, status, channel, requester_contact_id, account_id, owner_id, team_id, tags, product_id, order_id, opportunity_id, due_at, parent_ticket_id, first_responded_at, solved_at, merged_into_id, required_skills, root_cause_id, account_facts, custom_fields, created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
pub(super) struct TicketRow {
    id: Uuid,
    number: i64,
    subject: String,
    description: String,
    r#type: i16,
    priority: i16,
    status: i16,
    channel: i16,
    requester_contact_id: Option<Uuid>,
    account_id: Option<Uuid>,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    tags: Vec<String>,
    product_id: Option<Uuid>,
    order_id: Option<Uuid>,
    opportunity_id: Option<Uuid>,
    due_at: Option<DateTime<Utc>>,
    parent_ticket_id: Option<Uuid>,
    first_responded_at: Option<DateTime<Utc>>,
    solved_at: Option<DateTime<Utc>>,
    merged_into_id: Option<Uuid>,
    required_skills: Json<Skills>,
    root_cause_id: Option<Uuid>,
    account_facts: Json<AccountFacts>,
    custom_fields: Json<serde_json::Value>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<TicketRow> for Ticket {
    fn from(r: TicketRow) -> Self {
        Ticket {
            id: r.id.to_string(),
            number: r.number,
            subject: r.subject,
            description: r.description,
            r#type: r.r#type.into(),
            priority: r.priority.into(),
            status: r.status.into(),
            channel: r.channel.into(),
            requester_contact_id: id_text(r.requester_contact_id),
            account_id: id_text(r.account_id),
            assignee_id: id_text(r.owner_id),
            group_id: id_text(r.team_id),
            tags: r.tags,
            product_id: id_text(r.product_id),
            order_id: id_text(r.order_id),
            opportunity_id: id_text(r.opportunity_id),
            due_at: to_optional_timestamp(r.due_at),
            parent_ticket_id: id_text(r.parent_ticket_id),
            first_responded_at: to_optional_timestamp(r.first_responded_at),
            solved_at: to_optional_timestamp(r.solved_at),
            merged_into_id: id_text(r.merged_into_id),
            required_skills: routing::skill_list(&r.required_skills.0),
            root_cause_id: id_text(r.root_cause_id),
            account_facts: Some(r.account_facts.0),
            custom_fields: kit::custom_fields::to_proto_values(&r.custom_fields.0),
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

fn due_at(t: &Ticket) -> Option<DateTime<Utc>> {
    from_optional_timestamp("ticket.due_at", t.due_at.as_ref())
        .ok()
        .flatten()
}

/// The tenant's next ticket number: the counter row stays locked until
/// the transaction ends, so numbers follow the order of commits and a
/// rolled-back create gives its number back rather than leaving a gap.
async fn next_number(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO ticket_numbers (tenant_id, last) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET last = ticket_numbers.last + 1 RETURNING last",
    )
    .bind(tenant)
    .fetch_one(tx)
    .await
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    t: &Ticket,
    actor: &str,
) -> sqlx::Result<Ticket> {
    let number = next_number(tx, tenant).await?;
    let row: TicketRow = sqlx::query_as(&format!(
        "INSERT INTO tickets (tenant_id, id, number, subject, description, type, priority, status, channel, requester_contact_id, account_id, owner_id, team_id, tags, product_id, order_id, opportunity_id, due_at, parent_ticket_id, created_by, updated_by, required_skills, root_cause_id, account_facts, custom_fields) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $20, $21, $22, $23, $24) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(number)
    .bind(&t.subject)
    .bind(&t.description)
    .bind(t.r#type as i16)
    .bind(t.priority as i16)
    .bind(t.status as i16)
    .bind(t.channel as i16)
    .bind(checked_id(&t.requester_contact_id))
    .bind(checked_id(&t.account_id))
    .bind(checked_id(&t.assignee_id))
    .bind(checked_id(&t.group_id))
    .bind(&t.tags)
    .bind(checked_id(&t.product_id))
    .bind(checked_id(&t.order_id))
    .bind(checked_id(&t.opportunity_id))
    .bind(due_at(t))
    .bind(checked_id(&t.parent_ticket_id))
    .bind(actor)
    .bind(Json(routing::skill_map(&t.required_skills)))
    .bind(checked_id(&t.root_cause_id))
    .bind(Json(t.account_facts.clone().unwrap_or_default()))
    .bind(Json(custom_json(t)))
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// A ticket's custom values as stored (checked by the handler).
fn custom_json(t: &Ticket) -> serde_json::Value {
    serde_json::Value::Object(
        t.custom_fields
            .iter()
            .map(|(k, v)| (k.clone(), kit::values::value_to_json(v)))
            .collect(),
    )
}

/// Writes the editable fields (and the status' solved time); the version
/// moves on.
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
    actor: &str,
) -> sqlx::Result<Ticket> {
    let row: TicketRow = sqlx::query_as(&format!(
        "UPDATE tickets SET subject = $3, description = $4, type = $5, priority = $6, status = $7, \
         requester_contact_id = $8, account_id = $9, owner_id = $10, team_id = $11, tags = $12, \
         product_id = $13, order_id = $14, opportunity_id = $15, due_at = $16, parent_ticket_id = $17, required_skills = $20, root_cause_id = $21, account_facts = $22, custom_fields = $23, \
         solved_at = CASE WHEN $7 = $19 AND status <> $19 THEN now() ELSE solved_at END, \
         updated_at = now(), updated_by = $18, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(checked_id(&t.id))
    .bind(&t.subject)
    .bind(&t.description)
    .bind(t.r#type as i16)
    .bind(t.priority as i16)
    .bind(t.status as i16)
    .bind(checked_id(&t.requester_contact_id))
    .bind(checked_id(&t.account_id))
    .bind(checked_id(&t.assignee_id))
    .bind(checked_id(&t.group_id))
    .bind(&t.tags)
    .bind(checked_id(&t.product_id))
    .bind(checked_id(&t.order_id))
    .bind(checked_id(&t.opportunity_id))
    .bind(due_at(t))
    .bind(checked_id(&t.parent_ticket_id))
    .bind(actor)
    .bind(TicketStatus::Solved as i16)
    .bind(Json(routing::skill_map(&t.required_skills)))
    .bind(checked_id(&t.root_cause_id))
    .bind(Json(t.account_facts.clone().unwrap_or_default()))
    .bind(Json(custom_json(t)))
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

/// A ticket the scope sees (its assignee or group), locked for update
/// when `lock`.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Ticket>> {
    let row: Option<TicketRow> = scope
        .select_one(COLUMNS, "tickets", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Ticket::from))
}

/// Whether `ticket` is `ancestor` or below it (a child, a grandchild...).
pub async fn descends_from(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    ancestor: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "WITH RECURSIVE up AS ( \
             SELECT id, parent_ticket_id FROM tickets WHERE tenant_id = $1 AND id = $2 \
             UNION SELECT t.id, t.parent_ticket_id FROM tickets t JOIN up ON t.tenant_id = $1 AND t.id = up.parent_ticket_id) \
         SELECT EXISTS (SELECT 1 FROM up WHERE id = $3)",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(ancestor)
    .fetch_one(tx)
    .await
}

#[derive(Default)]
pub struct TicketFilter {
    pub status: Option<i16>,
    pub assignee: Option<Uuid>,
    pub group: Option<Uuid>,
    pub requester: Option<Uuid>,
    pub account: Option<Uuid>,
    pub open_only: bool,
}

/// Newest first.
pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: &TicketFilter,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Ticket>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM tickets WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(status) = filter.status {
        query.push(" AND status = ").push_bind(status);
    }
    if let Some(assignee) = filter.assignee {
        query.push(" AND owner_id = ").push_bind(assignee);
    }
    if let Some(group) = filter.group {
        query.push(" AND team_id = ").push_bind(group);
    }
    if let Some(requester) = filter.requester {
        query
            .push(" AND requester_contact_id = ")
            .push_bind(requester);
    }
    if let Some(account) = filter.account {
        query.push(" AND account_id = ").push_bind(account);
    }
    if filter.open_only {
        query
            .push(" AND status NOT IN (")
            .push_bind(TicketStatus::Solved as i16)
            .push(", ")
            .push_bind(TicketStatus::Closed as i16)
            .push(")");
    }
    scope.push_sql(&mut query);
    if let Some(after) = after {
        query.push(" AND id < ").push_bind(after);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    let rows: Vec<TicketRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Ticket::from).collect())
}

// ---- messages

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    ticket_id: Uuid,
    kind: i16,
    body: String,
    channel: i16,
    author_id: String,
    created_at: DateTime<Utc>,
    call_direction: Option<i16>,
    call_outcome: Option<i16>,
    call_seconds: Option<i32>,
    attachments: sqlx::types::Json<Vec<Attachment>>,
}

const MESSAGE_COLUMNS: &str = "id, ticket_id, kind, body, channel, author_id, created_at, \
     call_direction, call_outcome, call_seconds, attachments";

impl From<MessageRow> for TicketMessage {
    fn from(r: MessageRow) -> Self {
        TicketMessage {
            id: r.id.to_string(),
            ticket_id: r.ticket_id.to_string(),
            kind: r.kind.into(),
            body: r.body,
            channel: r.channel.into(),
            author_id: r.author_id,
            created_at: Some(to_timestamp(r.created_at)),
            call: match (r.call_direction, r.call_outcome) {
                (Some(direction), Some(outcome)) => Some(CallDetails {
                    direction: direction.into(),
                    outcome: outcome.into(),
                    duration_seconds: r.call_seconds.unwrap_or_default(),
                }),
                _ => None,
            },
            attachments: r.attachments.0,
        }
    }
}

pub async fn insert_message(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    m: &TicketMessage,
) -> sqlx::Result<TicketMessage> {
    let row: MessageRow = sqlx::query_as(&format!(
        "INSERT INTO ticket_messages (tenant_id, id, ticket_id, kind, body, channel, author_id, \
         call_direction, call_outcome, call_seconds, attachments) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(m.kind as i16)
    .bind(&m.body)
    .bind(m.channel as i16)
    .bind(&m.author_id)
    .bind(m.call.as_ref().map(|c| c.direction as i16))
    .bind(m.call.as_ref().map(|c| c.outcome as i16))
    .bind(m.call.as_ref().map(|c| c.duration_seconds))
    .bind(sqlx::types::Json(&m.attachments))
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_message(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<TicketMessage>> {
    let row: Option<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM ticket_messages WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(TicketMessage::from))
}

/// A first public reply: the ticket records when it came.
pub async fn mark_first_response(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
) -> sqlx::Result<bool> {
    let marked = sqlx::query(
        "UPDATE tickets SET first_responded_at = now() WHERE tenant_id = $1 AND id = $2 AND first_responded_at IS NULL",
    )
    .bind(tenant)
    .bind(ticket)
    .execute(tx)
    .await?;
    Ok(marked.rows_affected() == 1)
}

/// Oldest first.
pub async fn messages(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TicketMessage>> {
    let rows: Vec<MessageRow> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM ticket_messages \
         WHERE tenant_id = $1 AND ticket_id = $2 AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"
    ))
    .bind(tenant)
    .bind(ticket)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(TicketMessage::from).collect())
}

/// Merges `merged` into `survivor`: messages and child tickets move, the
/// survivor takes `tags` (both tickets' united), the duplicate is closed
/// pointing at the survivor. Both rows are locked by the caller.
pub async fn merge(
    tx: &mut PgConnection,
    tenant: Uuid,
    survivor: Uuid,
    merged: Uuid,
    tags: &[String],
    actor: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE ticket_messages SET ticket_id = $2 WHERE tenant_id = $1 AND ticket_id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE tickets SET parent_ticket_id = CASE WHEN id = $2 THEN NULL ELSE $2 END, \
         updated_at = now(), version = version + 1 WHERE tenant_id = $1 AND parent_ticket_id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE tickets s SET tags = $5, \
         first_responded_at = LEAST(s.first_responded_at, m.first_responded_at), \
         updated_at = now(), updated_by = $4, version = s.version + 1 \
         FROM tickets m WHERE s.tenant_id = $1 AND s.id = $2 AND m.tenant_id = $1 AND m.id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .bind(actor)
    .bind(tags)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE tickets SET status = $4, merged_into_id = $2, parent_ticket_id = NULL, \
         updated_at = now(), updated_by = $5, version = version + 1 WHERE tenant_id = $1 AND id = $3",
    )
    .bind(tenant)
    .bind(survivor)
    .bind(merged)
    .bind(TicketStatus::Closed as i16)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(())
}

// ---- history

/// Records changes of one ticket: (field, old, new).
pub async fn record_changes(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    actor: &str,
    changes: &[(String, String, String)],
) -> sqlx::Result<()> {
    for (field, old, new) in changes {
        sqlx::query(
            "INSERT INTO ticket_history (tenant_id, id, ticket_id, field, old_value, new_value, actor) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(ticket)
        .bind(field)
        .bind(old)
        .bind(new)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    id: Uuid,
    field: String,
    old_value: String,
    new_value: String,
    actor: String,
    changed_at: DateTime<Utc>,
}

/// Oldest first.
pub async fn history(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<TicketChange>> {
    let rows: Vec<ChangeRow> = sqlx::query_as(
        "SELECT id, field, old_value, new_value, actor, changed_at FROM ticket_history \
         WHERE tenant_id = $1 AND ticket_id = $2 AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TicketChange {
            id: r.id.to_string(),
            field: r.field,
            old_value: r.old_value,
            new_value: r.new_value,
            actor: r.actor,
            changed_at: Some(to_timestamp(r.changed_at)),
        })
        .collect())
}

// ---- customers' merges and erasures

/// Which of a ticket's references to customers' records a merge moves.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    Requester,
    Account,
}

/// A merge: the merged contact's or account's tickets move to the
/// survivor.
pub async fn repoint(
    tx: &mut PgConnection,
    tenant: Uuid,
    reference: Reference,
    from: Uuid,
    to: Uuid,
) -> sqlx::Result<u64> {
    let column = match reference {
        Reference::Requester => "requester_contact_id",
        Reference::Account => "account_id",
    };
    let moved = sqlx::query(&format!(
        "UPDATE tickets SET {column} = $3, updated_at = now(), version = version + 1 \
         WHERE tenant_id = $1 AND {column} = $2"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .execute(&mut *tx)
    .await?;
    // NPS answers follow the account; a merged contact's answers follow
    // them unless the survivor answered the same survey.
    let orders = match reference {
        Reference::Account => {
            "UPDATE orders SET account_id = $3 WHERE tenant_id = $1 AND account_id = $2"
        }
        Reference::Requester => {
            "UPDATE orders SET contact_ids = array_replace(contact_ids, $2, $3) \
             WHERE tenant_id = $1 AND contact_ids @> ARRAY[$2]::uuid[]"
        }
    };
    sqlx::query(orders)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
    let nps = match reference {
        Reference::Account => {
            "UPDATE nps_responses SET account_id = $3 WHERE tenant_id = $1 AND account_id = $2"
        }
        Reference::Requester => {
            "UPDATE nps_responses r SET contact_id = $3 WHERE tenant_id = $1 AND contact_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM nps_responses o WHERE o.tenant_id = $1 AND o.survey_id = r.survey_id AND o.contact_id = $3)"
        }
    };
    sqlx::query(nps)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(tx)
        .await?;
    Ok(moved.rows_affected())
}

/// An erasure: the person's tickets stay for statistics, anonymised: no
/// requester, subject and description replaced, the customer's own
/// messages emptied and the agents' public replies (written to them)
/// too; internal notes are the agents' and stay. Their mail threads go.
pub async fn erase_requester(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<u64> {
    let tickets: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tickets SET requester_contact_id = NULL, subject = '[erased]', description = '', \
         updated_at = now(), version = version + 1 WHERE tenant_id = $1 AND requester_contact_id = $2 RETURNING id",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ticket_messages SET body = '[erased]', attachments = '[]', author_id = CASE WHEN author_id = $3 THEN '' ELSE author_id END \
         WHERE tenant_id = $1 AND ticket_id = ANY($2) AND kind <> $4",
    )
    .bind(tenant)
    .bind(&tickets)
    .bind(contact.to_string())
    .bind(crm_proto::crm::servicedesk::v1::MessageKind::InternalNote as i16)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE ticket_history SET old_value = '', new_value = '' WHERE tenant_id = $1 AND ticket_id = ANY($2) AND field IN ('subject', 'requester_contact_id')",
    )
    .bind(tenant)
    .bind(&tickets)
    .execute(&mut *tx)
    .await?;
    // Their survey answers keep the score, not the person or their words.
    sqlx::query(
        "UPDATE satisfaction_ratings SET requester_contact_id = NULL, comment = '' WHERE tenant_id = $1 AND ticket_id = ANY($2)",
    )
    .bind(tenant)
    .bind(&tickets)
    .execute(&mut *tx)
    .await?;
    // Their mail threads (hashes of the person's address) and any reply
    // still waiting to be mailed to them.
    for table in ["mail_threads", "mail_queue"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND ticket_id = ANY($2)"
        ))
        .bind(tenant)
        .bind(&tickets)
        .execute(&mut *tx)
        .await?;
    }
    // A portal link or NPS survey still waiting to be mailed to them,
    // their NPS invitations; their answers keep the score only.
    for statement in [
        "DELETE FROM mail_queue WHERE tenant_id = $1 AND contact_id = $2",
        "DELETE FROM nps_invitations WHERE tenant_id = $1 AND contact_id = $2",
        "UPDATE nps_responses SET contact_id = NULL, comment = '' WHERE tenant_id = $1 AND contact_id = $2",
        "UPDATE orders SET contact_ids = array_remove(contact_ids, $2) WHERE tenant_id = $1 AND contact_ids @> ARRAY[$2]::uuid[]",
    ] {
        sqlx::query(statement)
            .bind(tenant)
            .bind(contact)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tickets.len() as u64)
}

/// A ticket locked for update, or `None` while another transaction holds
/// it (background work comes back later rather than wait).
pub async fn lock_if_free(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Ticket>> {
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Ticket::from))
}

// ---- links

/// Links `a` to `b` as `kind` seen from `a` (replacing a link they had).
pub async fn link(
    tx: &mut PgConnection,
    tenant: Uuid,
    a: Uuid,
    b: Uuid,
    kind: LinkKind,
    actor: &str,
) -> sqlx::Result<()> {
    let (first, second, kind) = if a < b {
        (a, b, kind)
    } else {
        (b, a, inverse(kind))
    };
    sqlx::query(
        "INSERT INTO ticket_links (tenant_id, first_id, second_id, kind, linked_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, first_id, second_id) DO UPDATE SET kind = $4, linked_by = $5, linked_at = now()",
    )
    .bind(tenant)
    .bind(first)
    .bind(second)
    .bind(kind as i16)
    .bind(actor)
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether a link between `a` and `b` was there to remove.
pub async fn unlink(tx: &mut PgConnection, tenant: Uuid, a: Uuid, b: Uuid) -> sqlx::Result<bool> {
    let removed = sqlx::query(
        "DELETE FROM ticket_links WHERE tenant_id = $1 AND first_id = $2 AND second_id = $3",
    )
    .bind(tenant)
    .bind(a.min(b))
    .bind(a.max(b))
    .execute(tx)
    .await?;
    Ok(removed.rows_affected() == 1)
}

/// The links of `ticket` to tickets the scope sees, seen from `ticket`.
pub async fn links(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    ticket: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<TicketLink>> {
    let mut query =
        QueryBuilder::<Postgres>::new("SELECT t.id, t.number, t.subject, CASE WHEN l.first_id = ");
    query
        .push_bind(ticket)
        .push(
            " THEN l.kind ELSE -l.kind END, l.linked_by, l.linked_at \
               FROM ticket_links l JOIN tickets t ON t.tenant_id = l.tenant_id \
               AND t.id = CASE WHEN l.first_id = ",
        )
        .push_bind(ticket)
        .push(" THEN l.second_id ELSE l.first_id END WHERE l.tenant_id = ")
        .push_bind(tenant)
        .push(" AND (l.first_id = ")
        .push_bind(ticket)
        .push(" OR l.second_id = ")
        .push_bind(ticket)
        .push(")");
    scope.push_sql(&mut query);
    query
        .push(" ORDER BY l.linked_at, t.id LIMIT ")
        .push_bind(limit);
    let rows: Vec<(Uuid, i64, String, i16, String, DateTime<Utc>)> =
        query.build_query_as().fetch_all(tx).await?;
    Ok(rows
        .into_iter()
        .map(|(other, number, subject, kind, linked_by, linked_at)| {
            // A negative kind is the stored one seen from the other side.
            let stored = LinkKind::try_from(i32::from(kind.abs())).unwrap_or_default();
            let kind = if kind < 0 { inverse(stored) } else { stored };
            TicketLink {
                ticket_id: ticket.to_string(),
                other_ticket_id: other.to_string(),
                other_ticket_number: number,
                other_ticket_subject: subject,
                kind: kind as i32,
                linked_by,
                linked_at: Some(to_timestamp(linked_at)),
            }
        })
        .collect())
}

/// An account changed in customers: its open tickets see its new facts
/// (policies already matched stay until the ticket changes).
pub async fn refresh_account_facts(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: Uuid,
    facts: &AccountFacts,
) -> sqlx::Result<u64> {
    let updated = sqlx::query(
        "UPDATE tickets SET account_facts = $3 WHERE tenant_id = $1 AND account_id = $2 AND status <> $4 AND account_facts <> $3",
    )
    .bind(tenant)
    .bind(account)
    .bind(Json(facts))
    .bind(TicketStatus::Closed as i16)
    .execute(tx)
    .await?;
    Ok(updated.rows_affected())
}
