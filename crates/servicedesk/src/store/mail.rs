//! Mailboxes, mail threads, the outbound mail queue, and chat channels
//! with their conversations.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{ChatChannel, Mailbox};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::mail::MailKind;

#[derive(sqlx::FromRow)]
struct MailboxRow {
    id: Uuid,
    address: String,
    name: String,
    group_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<MailboxRow> for Mailbox {
    fn from(r: MailboxRow) -> Self {
        Mailbox {
            id: r.id.to_string(),
            address: r.address,
            name: r.name,
            group_id: id_text(r.group_id),
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

const MAILBOX_COLUMNS: &str =
    "id, address, name, group_id, created_at, created_by, updated_at, updated_by, version";

/// Inserts a mailbox and claims its address for the tenant; an address
/// another mailbox (of any tenant) holds is a unique violation.
pub async fn insert_mailbox(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    m: &Mailbox,
    actor: &str,
) -> sqlx::Result<Mailbox> {
    let row: MailboxRow = sqlx::query_as(&format!(
        "INSERT INTO mailboxes (tenant_id, id, address, name, group_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {MAILBOX_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&m.address)
    .bind(&m.name)
    .bind(checked_id(&m.group_id))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO mail_addresses (address, tenant_id, mailbox_id) VALUES ($1, $2, $3)")
        .bind(&m.address)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(row.into())
}

pub async fn find_mailbox(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Mailbox>> {
    let row: Option<MailboxRow> = sqlx::query_as(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Into::into))
}

pub async fn list_mailboxes(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Mailbox>> {
    let rows: Vec<MailboxRow> = sqlx::query_as(&format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE tenant_id = $1 \
         AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Deletes a mailbox (its address with it); false when there is none.
pub async fn delete_mailbox(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM mailboxes WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// The tenant and mailbox an address belongs to, whichever tenant it is
/// (the inbound listener, before it knows the tenant).
pub async fn route_address(
    tx: &mut PgConnection,
    address: &str,
) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as("SELECT tenant_id, mailbox_id FROM mail_addresses WHERE address = $1")
        .bind(address)
        .fetch_optional(tx)
        .await
}

/// Whether an address is one of the platform's own mailboxes (mail from it
/// is the desk talking to itself).
pub async fn is_own_address(tx: &mut PgConnection, address: &str) -> sqlx::Result<bool> {
    Ok(route_address(tx, address).await?.is_some())
}

/// The ticket the first known of `ids` threads into.
pub async fn ticket_of_messages(
    tx: &mut PgConnection,
    tenant: Uuid,
    ids: &[String],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT t.ticket_id FROM unnest($2::text[]) WITH ORDINALITY AS i(id, n) \
         JOIN mail_threads t ON t.tenant_id = $1 AND t.message_id = i.id ORDER BY i.n LIMIT 1",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_optional(tx)
    .await
}

/// The ticket numbered `number`, if `correspondent` wrote on it or was
/// written to from it by mail.
pub async fn ticket_of_correspondent(
    tx: &mut PgConnection,
    tenant: Uuid,
    number: i64,
    correspondent: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT t.id FROM tickets t WHERE t.tenant_id = $1 AND t.number = $2 AND EXISTS \
         (SELECT 1 FROM mail_threads m WHERE m.tenant_id = $1 AND m.ticket_id = t.id AND m.correspondent = $3)",
    )
    .bind(tenant)
    .bind(number)
    .bind(correspondent)
    .fetch_optional(tx)
    .await
}

/// One Message-ID of a ticket's mail.
pub struct ThreadEntry<'a> {
    pub message_id: &'a str,
    pub ticket: Uuid,
    pub mailbox: Uuid,
    pub correspondent: &'a str,
    pub inbound: bool,
}

pub async fn record_thread(
    tx: &mut PgConnection,
    tenant: Uuid,
    entry: &ThreadEntry<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_threads (tenant_id, message_id, ticket_id, mailbox_id, correspondent, inbound) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(entry.message_id)
    .bind(entry.ticket)
    .bind(entry.mailbox)
    .bind(entry.correspondent)
    .bind(entry.inbound)
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether a Message-ID was received already (a delivery repeated).
pub async fn seen(tx: &mut PgConnection, tenant: Uuid, message_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM mail_threads WHERE tenant_id = $1 AND message_id = $2)",
    )
    .bind(tenant)
    .bind(message_id)
    .fetch_one(tx)
    .await
}

/// How a ticket's mail goes out: the mailbox of its latest mail and the
/// Message-IDs so far, oldest first (the last is In-Reply-To, the last
/// ten References). `None`: the ticket has no mail thread.
pub async fn thread_of(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
) -> sqlx::Result<Option<(Uuid, Vec<String>)>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT mailbox_id, message_id FROM mail_threads WHERE tenant_id = $1 AND ticket_id = $2 \
         ORDER BY at, message_id",
    )
    .bind(tenant)
    .bind(ticket)
    .fetch_all(tx)
    .await?;
    let Some((mailbox, _)) = rows.last().cloned() else {
        return Ok(None);
    };
    Ok(Some((
        mailbox,
        rows.into_iter().map(|(_, id)| id).collect(),
    )))
}

/// Queues a mail to the requester of a ticket (a reply: its ticket
/// message; a survey), due at `now`, if the ticket has a mail thread (it
/// came by mail) or its first mail is waiting (a support form's
/// acknowledgement, sent before: the queue is drained in order).
pub async fn enqueue_if_mailed(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    kind: MailKind,
    message: Option<Uuid>,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO mail_queue (tenant_id, id, ticket_id, kind, message_id, next_at) \
         SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS \
         (SELECT 1 FROM mail_threads WHERE tenant_id = $1 AND ticket_id = $3) OR EXISTS \
         (SELECT 1 FROM mail_queue WHERE tenant_id = $1 AND ticket_id = $3 AND kind = $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(kind as i16)
    .bind(message)
    .bind(now)
    .bind(MailKind::Acknowledgement as i16)
    .execute(tx)
    .await?;
    Ok(())
}

/// A queued mail taken by the sender.
#[derive(sqlx::FromRow)]
pub struct Queued {
    pub tenant_id: Uuid,
    pub id: Uuid,
    /// None for a portal link, which is about a person.
    pub ticket_id: Option<Uuid>,
    pub kind: i16,
    pub message_id: Option<Uuid>,
    pub attempts: i32,
    /// The mailbox to send from when the ticket has no thread yet.
    pub mailbox_id: Option<Uuid>,
    /// The person a portal link or NPS survey goes to.
    pub contact_id: Option<Uuid>,
    /// The NPS survey a mail asks for.
    pub nps_survey_id: Option<Uuid>,
}

/// Locks mail due by `now`, skipping what another pod is sending.
pub async fn lock_due(
    tx: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Queued>> {
    sqlx::query_as(
        "SELECT tenant_id, id, ticket_id, kind, message_id, attempts, mailbox_id, contact_id, nps_survey_id FROM mail_queue \
         WHERE next_at <= $1 ORDER BY next_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(tx)
    .await
}

pub async fn dequeue(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM mail_queue WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Tries again at `next_at`, keeping why the last try failed.
pub async fn retry(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    next_at: DateTime<Utc>,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mail_queue SET attempts = attempts + 1, next_at = $3, last_error = $4 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(next_at)
    .bind(error)
    .execute(tx)
    .await?;
    Ok(())
}

// ---- chat channels

#[derive(sqlx::FromRow)]
struct ChatRow {
    id: Uuid,
    name: String,
    group_id: Option<Uuid>,
    secret_generation: i32,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

/// A chat channel and the generation its secret is derived under.
pub struct ChatChannelRow {
    pub channel: ChatChannel,
    pub secret_generation: i32,
}

fn chat_channel(tenant: Uuid, r: ChatRow) -> ChatChannelRow {
    ChatChannelRow {
        channel: ChatChannel {
            id: r.id.to_string(),
            name: r.name,
            group_id: id_text(r.group_id),
            key: format!("{}.{}", tenant.simple(), r.id.simple()),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        },
        secret_generation: r.secret_generation,
    }
}

const CHAT_COLUMNS: &str = "id, name, group_id, secret_generation, created_at, created_by, updated_at, updated_by, version";

pub async fn insert_chat_channel(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    c: &ChatChannel,
    actor: &str,
) -> sqlx::Result<ChatChannelRow> {
    let row: ChatRow = sqlx::query_as(&format!(
        "INSERT INTO chat_channels (tenant_id, id, name, group_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {CHAT_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&c.name)
    .bind(checked_id(&c.group_id))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(chat_channel(tenant, row))
}

pub async fn find_chat_channel(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<ChatChannelRow>> {
    let row: Option<ChatRow> = sqlx::query_as(&format!(
        "SELECT {CHAT_COLUMNS} FROM chat_channels WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|r| chat_channel(tenant, r)))
}

pub async fn list_chat_channels(
    tx: &mut PgConnection,
    tenant: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<ChatChannel>> {
    let rows: Vec<ChatRow> =
        super::list_by_name(tx, "chat_channels", CHAT_COLUMNS, tenant, after, limit).await?;
    Ok(rows
        .into_iter()
        .map(|r| chat_channel(tenant, r).channel)
        .collect())
}

pub async fn delete_chat_channel(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM chat_channels WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Counts the secret's generation up; the new generation, `None` when
/// there is no such channel.
pub async fn rotate_chat_secret(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar(
        "UPDATE chat_channels SET secret_generation = secret_generation + 1, updated_at = now(), \
         updated_by = $3, version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING secret_generation",
    )
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .fetch_optional(tx)
    .await
}

/// The ticket a conversation continues.
pub async fn conversation_ticket(
    tx: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    conversation: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT ticket_id FROM chat_conversations WHERE tenant_id = $1 AND channel_id = $2 AND conversation = $3",
    )
    .bind(tenant)
    .bind(channel)
    .bind(conversation)
    .fetch_optional(tx)
    .await
}

/// The conversation continues `ticket` from now on.
pub async fn set_conversation_ticket(
    tx: &mut PgConnection,
    tenant: Uuid,
    channel: Uuid,
    conversation: &str,
    ticket: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO chat_conversations (tenant_id, channel_id, conversation, ticket_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, channel_id, conversation) DO UPDATE SET ticket_id = EXCLUDED.ticket_id",
    )
    .bind(tenant)
    .bind(channel)
    .bind(conversation)
    .bind(ticket)
    .execute(tx)
    .await?;
    Ok(())
}
