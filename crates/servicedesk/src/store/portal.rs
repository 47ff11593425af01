//! Support forms, the requester's view of their tickets, and the mail the
//! portal queues (acknowledgements and portal links).

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{SupportForm, Ticket};
use sqlx::PgConnection;
use uuid::Uuid;

use super::tickets::{TicketRow, COLUMNS};
use super::{audit, checked_id, id_text};
use crate::domain::mail::MailKind;
use crate::domain::portal::form_key;

#[derive(sqlx::FromRow)]
struct FormRow {
    id: Uuid,
    name: String,
    group_id: Option<Uuid>,
    mailbox_id: Uuid,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

fn form(tenant: Uuid, r: FormRow) -> SupportForm {
    SupportForm {
        id: r.id.to_string(),
        name: r.name,
        group_id: id_text(r.group_id),
        mailbox_id: r.mailbox_id.to_string(),
        key: form_key(tenant, r.id),
        audit: audit(
            r.created_at,
            r.created_by,
            r.updated_at,
            r.updated_by,
            r.version,
        ),
    }
}

const FORM_COLUMNS: &str =
    "id, name, group_id, mailbox_id, created_at, created_by, updated_at, updated_by, version";

/// An unknown mailbox is a foreign key violation.
pub async fn insert_form(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    f: &SupportForm,
    actor: &str,
) -> sqlx::Result<SupportForm> {
    let row: FormRow = sqlx::query_as(&format!(
        "INSERT INTO support_forms (tenant_id, id, name, group_id, mailbox_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {FORM_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&f.name)
    .bind(checked_id(&f.group_id))
    .bind(checked_id(&f.mailbox_id))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(form(tenant, row))
}

pub async fn find_form(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<SupportForm>> {
    let row: Option<FormRow> = sqlx::query_as(&format!(
        "SELECT {FORM_COLUMNS} FROM support_forms WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| form(tenant, r)))
}

pub async fn list_forms(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<SupportForm>> {
    let rows: Vec<FormRow> =
        super::list_by_name(tx, "support_forms", FORM_COLUMNS, tenant, after, limit).await?;
    Ok(rows.into_iter().map(|r| form(tenant, r)).collect())
}

pub async fn delete_form(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM support_forms WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// A requester's tickets, newest first (ids are time-ordered).
pub async fn requester_tickets(
    tx: &mut PgConnection,
    tenant: Uuid,
    requester: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Ticket>> {
    let rows: Vec<TicketRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND requester_contact_id = $2 \
         AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(requester)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Ticket::from).collect())
}

/// The ticket numbered `number` if `requester` asked it; `None` for
/// anyone else's (the portal cannot tell the two apart to the caller).
pub async fn requester_ticket(
    tx: &mut PgConnection,
    tenant: Uuid,
    requester: Uuid,
    number: i64,
) -> sqlx::Result<Option<Ticket>> {
    let row: Option<TicketRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND number = $2 AND requester_contact_id = $3"
    ))
    .bind(tenant)
    .bind(number)
    .bind(requester)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Ticket::from))
}

/// Queues a ticket's acknowledgement from `mailbox`, unless the ticket has
/// mail already (sent or queued): a repeated submission mails once.
pub async fn enqueue_acknowledgement(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    mailbox: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_queue (tenant_id, id, ticket_id, kind, mailbox_id, next_at) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE NOT EXISTS (SELECT 1 FROM mail_threads WHERE tenant_id = $1 AND ticket_id = $3) \
           AND NOT EXISTS (SELECT 1 FROM mail_queue WHERE tenant_id = $1 AND ticket_id = $3 AND kind = $4)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(MailKind::Acknowledgement as i16)
    .bind(mailbox)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues a portal link to `contact` from `mailbox`; one waits per person
/// at a time, however often they ask.
pub async fn enqueue_link(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
    mailbox: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_queue (tenant_id, id, kind, contact_id, mailbox_id, next_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, contact_id) WHERE kind = 4 DO NOTHING",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(MailKind::PortalLink as i16)
    .bind(contact)
    .bind(mailbox)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}
