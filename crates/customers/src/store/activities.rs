//! Activities, tasks and their reminders.

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::{Activity, ActivityKind, RelatedRecord, TaskDetails};
use kit::time::{to_optional_timestamp, to_timestamp};
use sqlx::types::Json;
use sqlx::PgConnection;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, id_string, push_scope};
use crate::domain::access::Scope;

pub const COLUMNS: &str = "id, kind, subject, body, contact_id, account_id, related, occurred_at, ends_at, direction, \
    duration_seconds, outcome, attendees, due_at, remind_at, priority, assignee_id, completed_at, owner_id, \
    created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
pub struct ActivityRow {
    pub id: Uuid,
    pub kind: i32,
    pub subject: String,
    pub body: String,
    pub contact_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub related: Json<Vec<RelatedRecord>>,
    pub occurred_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub direction: i32,
    pub duration_seconds: i32,
    pub outcome: String,
    pub attendees: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub remind_at: Option<DateTime<Utc>>,
    pub priority: i32,
    pub assignee_id: Option<Uuid>,
    pub completed_at: Option<DateTime<Utc>>,
    pub owner_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub version: i64,
}

impl ActivityRow {
    pub fn into_proto(self) -> Activity {
        let is_task = self.kind == ActivityKind::Task as i32;
        Activity {
            id: self.id.to_string(),
            kind: self.kind,
            subject: self.subject,
            body: self.body,
            contact_id: id_string(self.contact_id),
            account_id: id_string(self.account_id),
            related: self.related.0,
            occurred_at: Some(to_timestamp(self.occurred_at)),
            ends_at: to_optional_timestamp(self.ends_at),
            direction: self.direction,
            duration_seconds: self.duration_seconds,
            outcome: self.outcome,
            attendees: self.attendees,
            task: is_task.then(|| TaskDetails {
                due_at: to_optional_timestamp(self.due_at),
                remind_at: to_optional_timestamp(self.remind_at),
                priority: self.priority,
                assignee_id: id_string(self.assignee_id),
                completed_at: to_optional_timestamp(self.completed_at),
            }),
            owner_id: id_string(self.owner_id),
            audit: audit(
                self.created_at,
                self.created_by,
                self.updated_at,
                self.updated_by,
                self.version,
            ),
        }
    }
}

/// A checked activity ready to insert.
pub struct NewActivity {
    pub id: Uuid,
    pub kind: i32,
    pub subject: String,
    pub body: String,
    pub contact_id: Option<Uuid>,
    pub account_id: Option<Uuid>,
    pub related: Vec<RelatedRecord>,
    pub occurred_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub direction: i32,
    pub duration_seconds: i32,
    pub outcome: String,
    pub attendees: Vec<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub remind_at: Option<DateTime<Utc>>,
    pub priority: i32,
    pub assignee_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
}

pub async fn insert(
    tx: &mut PgConnection,
    tenant: Uuid,
    activity: &NewActivity,
    actor: &str,
) -> sqlx::Result<Activity> {
    let row: ActivityRow = sqlx::query_as(&format!(
        "INSERT INTO activities (tenant_id, id, kind, subject, body, contact_id, account_id, related, occurred_at,
            ends_at, direction, duration_seconds, outcome, attendees, due_at, remind_at, priority, assignee_id,
            owner_id, team_id, created_at, created_by, updated_at, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
            now(), $21, now(), $21)
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(activity.id)
    .bind(activity.kind)
    .bind(&activity.subject)
    .bind(&activity.body)
    .bind(activity.contact_id)
    .bind(activity.account_id)
    .bind(Json(&activity.related))
    .bind(activity.occurred_at)
    .bind(activity.ends_at)
    .bind(activity.direction)
    .bind(activity.duration_seconds)
    .bind(&activity.outcome)
    .bind(&activity.attendees)
    .bind(activity.due_at)
    .bind(activity.remind_at)
    .bind(activity.priority)
    .bind(activity.assignee_id)
    .bind(activity.owner_id)
    .bind(activity.team_id)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    if let (Some(remind_at), true) = (
        activity.remind_at,
        activity.kind == ActivityKind::Task as i32,
    ) {
        sqlx::query(
            "INSERT INTO task_reminders (tenant_id, task_id, remind_at) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(activity.id)
        .bind(remind_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(row.into_proto())
}

/// An activity with the owner and team used for visibility.
/// One activity by id, if `scope` sees it or it is a task assigned to `user`.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    user: Option<Uuid>,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Activity>> {
    let row: Option<ActivityRow> = scope
        .select_one_or_assigned(
            COLUMNS,
            "activities",
            tenant,
            id,
            lock,
            Some(("assignee_id", user)),
        )
        .build_query_as()
        .fetch_optional(&mut *tx)
        .await?;
    Ok(row.map(ActivityRow::into_proto))
}

/// Timeline of a contact (`column` = contact_id) or account (account_id),
/// newest first, after `after`.
pub async fn timeline(
    tx: &mut PgConnection,
    tenant: Uuid,
    column: &'static str,
    parent: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Activity>> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM activities WHERE tenant_id = "
    ));
    query
        .push_bind(tenant)
        .push(format!(" AND {column} = "))
        .push_bind(parent);
    if let Some((time, id)) = after {
        query
            .push(" AND (occurred_at, id) < (")
            .push_bind(time)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY occurred_at DESC, id DESC LIMIT ")
        .push_bind(limit);
    let rows: Vec<ActivityRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(ActivityRow::into_proto).collect())
}

/// When undated tasks are due, for ordering: after every dated one.
pub fn undated() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_214_400, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
    // 9999-12-31
}

/// Tasks by due time (undated last), after `after` = (due time, id).
/// Which tasks a task list shows.
pub struct TaskFilter {
    pub assignee: Option<Uuid>,
    pub contact: Option<Uuid>,
    pub account: Option<Uuid>,
    pub include_completed: bool,
}

pub async fn tasks(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: &TaskFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Activity>> {
    let mut query = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM activities WHERE tenant_id = "
    ));
    query
        .push_bind(tenant)
        .push(" AND kind = ")
        .push_bind(ActivityKind::Task as i32);
    if let Some(assignee) = filter.assignee {
        query.push(" AND assignee_id = ").push_bind(assignee);
    }
    if let Some(contact) = filter.contact {
        query.push(" AND contact_id = ").push_bind(contact);
    }
    if let Some(account) = filter.account {
        query.push(" AND account_id = ").push_bind(account);
    }
    if !filter.include_completed {
        query.push(" AND completed_at IS NULL");
    }
    push_scope(&mut query, scope);
    let rank = "coalesce(due_at, '9999-12-31T00:00:00Z'::timestamptz)";
    if let Some((time, id)) = after {
        query
            .push(format!(" AND ({rank}, id) > ("))
            .push_bind(time)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(format!(" ORDER BY {rank}, id LIMIT "))
        .push_bind(limit);
    let rows: Vec<ActivityRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(ActivityRow::into_proto).collect())
}

pub async fn complete(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
) -> sqlx::Result<Activity> {
    let row: ActivityRow = sqlx::query_as(&format!(
        "UPDATE activities SET completed_at = coalesce(completed_at, now()), updated_at = now(), updated_by = $3,
            version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM task_reminders WHERE tenant_id = $1 AND task_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(row.into_proto())
}

/// Reminders that are due, locked so only one scheduler handles each.
pub async fn lock_due_reminders(
    tx: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, task_id FROM task_reminders WHERE remind_at <= now()
          ORDER BY remind_at LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
}

pub async fn forget_reminder(tx: &mut PgConnection, tenant: Uuid, task: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM task_reminders WHERE tenant_id = $1 AND task_id = $2")
        .bind(tenant)
        .bind(task)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Every activity of a contact, for data exports.
pub async fn all_of_contact(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Uuid,
) -> sqlx::Result<Vec<Activity>> {
    let rows: Vec<ActivityRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM activities WHERE tenant_id = $1 AND contact_id = $2 ORDER BY occurred_at, id"
    ))
    .bind(tenant)
    .bind(contact)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(ActivityRow::into_proto).collect())
}

/// Rewrites the editable fields of an activity and its reminder.
pub async fn update(
    tx: &mut PgConnection,
    tenant: Uuid,
    activity: &NewActivity,
    actor: &str,
) -> sqlx::Result<Activity> {
    let row: ActivityRow = sqlx::query_as(&format!(
        "UPDATE activities SET subject = $3, body = $4, related = $5, occurred_at = $6, ends_at = $7,
            direction = $8, duration_seconds = $9, outcome = $10, attendees = $11, due_at = $12, remind_at = $13,
            priority = $14, assignee_id = $15, updated_at = now(), updated_by = $16, version = version + 1
          WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(activity.id)
    .bind(&activity.subject)
    .bind(&activity.body)
    .bind(Json(&activity.related))
    .bind(activity.occurred_at)
    .bind(activity.ends_at)
    .bind(activity.direction)
    .bind(activity.duration_seconds)
    .bind(&activity.outcome)
    .bind(&activity.attendees)
    .bind(activity.due_at)
    .bind(activity.remind_at)
    .bind(activity.priority)
    .bind(activity.assignee_id)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    forget_reminder(tx, tenant, activity.id).await?;
    let open_task = row.kind == ActivityKind::Task as i32 && row.completed_at.is_none();
    if let (Some(remind_at), true) = (activity.remind_at, open_task) {
        sqlx::query(
            "INSERT INTO task_reminders (tenant_id, task_id, remind_at) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(activity.id)
        .bind(remind_at)
        .execute(&mut *tx)
        .await?;
    }
    Ok(row.into_proto())
}

pub async fn delete(tx: &mut PgConnection, tenant: Uuid, id: Uuid) -> sqlx::Result<()> {
    forget_reminder(tx, tenant, id).await?;
    sqlx::query("DELETE FROM activities WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
