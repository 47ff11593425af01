//! `crm.customers.v1.ActivityService`.

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::activity_service_server::ActivityService;
use crm_proto::crm::customers::v1::*;
use kit::auth::CallerContext;
use kit::error::Violations;
use kit::paging::{finish_page, Page};
use kit::rpc::{check_version, version_of};
use kit::time::{from_optional_timestamp, from_timestamp};
use kit::Error;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::accounts::visible_account;
use super::contacts::visible_contact;
use super::masks::{apply_activity_mask, changed_activity_fields};
use super::{commit, handle, page_response, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::{optional_id, parse_id, text};
use crate::store::activities::{self as store, NewActivity};

pub struct ActivityHandlers(pub SharedState);

fn time_of(
    activity: &Activity,
    pick: impl Fn(&Activity) -> Option<&prost_types::Timestamp>,
) -> DateTime<Utc> {
    pick(activity)
        .and_then(|t| from_timestamp("", t).ok())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Checks an activity request and turns it into a row to insert.
fn check(activity: Activity, caller: &CallerContext) -> kit::Result<NewActivity> {
    let mut v = Violations::new();
    let mut activity = activity;
    let kind = ActivityKind::try_from(activity.kind).unwrap_or(ActivityKind::Unspecified);
    if kind == ActivityKind::Unspecified {
        v.add("activity.kind", "is required");
    }
    v.check(text("activity.subject", &mut activity.subject, 300));
    v.check(text("activity.body", &mut activity.body, 100_000));
    v.check(text("activity.outcome", &mut activity.outcome, 200));
    let contact_id = v
        .check(optional_id("activity.contact_id", &activity.contact_id))
        .flatten();
    let account_id = v
        .check(optional_id("activity.account_id", &activity.account_id))
        .flatten();
    if contact_id.is_none() && account_id.is_none() {
        v.add(
            "activity.contact_id",
            "an activity belongs to a contact or an account (or both)",
        );
    }
    for (i, related) in activity.related.iter().enumerate() {
        if related.kind.trim().is_empty() || Uuid::parse_str(&related.id).is_err() {
            v.add(
                format!("activity.related[{i}]"),
                "needs a kind and an id (UUID)",
            );
        }
    }
    let occurred_at = v.check(
        from_optional_timestamp("activity.occurred_at", activity.occurred_at.as_ref())
            .map_err(first_violation),
    );
    let ends_at = v
        .check(
            from_optional_timestamp("activity.ends_at", activity.ends_at.as_ref())
                .map_err(first_violation),
        )
        .flatten();
    let occurred_at = occurred_at.flatten().unwrap_or_else(Utc::now);
    if ends_at.is_some_and(|end| end < occurred_at) {
        v.add("activity.ends_at", "is before the start");
    }
    if Direction::try_from(activity.direction).is_err() {
        v.add("activity.direction", "is not a known direction");
    }
    if activity.duration_seconds < 0 {
        v.add("activity.duration_seconds", "must not be negative");
    }
    if activity.attendees.len() > 200 {
        v.add("activity.attendees", "at most 200 attendees");
    }
    let task = activity.task.take().unwrap_or_default();
    let is_task = kind == ActivityKind::Task;
    let due_at = v
        .check(
            from_optional_timestamp("activity.task.due_at", task.due_at.as_ref())
                .map_err(first_violation),
        )
        .flatten();
    let remind_at = v
        .check(
            from_optional_timestamp("activity.task.remind_at", task.remind_at.as_ref())
                .map_err(first_violation),
        )
        .flatten();
    let assignee_id = v
        .check(optional_id("activity.task.assignee_id", &task.assignee_id))
        .flatten();
    if is_task && activity.subject.is_empty() {
        v.add("activity.subject", "a task needs a subject");
    }
    if !is_task && (due_at.is_some() || remind_at.is_some() || assignee_id.is_some()) {
        v.add(
            "activity.task",
            "only tasks have due time, reminder and assignee",
        );
    }
    if Priority::try_from(task.priority).is_err() {
        v.add("activity.task.priority", "is not a known priority");
    }
    v.into_result()?;
    Ok(NewActivity {
        id: Uuid::now_v7(),
        kind: kind as i32,
        subject: activity.subject,
        body: activity.body,
        contact_id,
        account_id,
        related: activity.related,
        occurred_at,
        ends_at,
        direction: activity.direction,
        duration_seconds: activity.duration_seconds,
        outcome: activity.outcome,
        attendees: activity.attendees,
        due_at,
        remind_at,
        priority: if is_task && task.priority == 0 {
            Priority::Normal as i32
        } else {
            task.priority
        },
        assignee_id: if is_task {
            assignee_id.or(caller.user_id)
        } else {
            None
        },
        owner_id: caller.user_id,
        team_id: caller.teams.first().copied(),
    })
}

fn first_violation(error: Error) -> kit::error::FieldViolation {
    match error {
        Error::InvalidArgument(mut list) if !list.is_empty() => list.remove(0),
        other => kit::error::FieldViolation::new("", other.to_string()),
    }
}

/// The contact and/or account an activity belongs to must be visible.
async fn check_parents(
    tx: &mut PgConnection,
    caller: &CallerContext,
    contact: Option<Uuid>,
    account: Option<Uuid>,
) -> kit::Result<()> {
    if let Some(contact) = contact {
        visible_contact(tx, caller, contact, false).await?;
    }
    if let Some(account) = account {
        visible_account(tx, caller, account, false).await?;
    }
    Ok(())
}

async fn visible_activity(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Activity> {
    store::find(
        tx,
        caller.tenant_id,
        &scope(caller),
        caller.user_id,
        id,
        lock,
    )
    .await?
    .ok_or_else(|| Error::not_found("activity", id))
}

#[tonic::async_trait]
impl ActivityService for ActivityHandlers {
    async fn log_activity(
        &self,
        request: Request<LogActivityRequest>,
    ) -> Result<Response<LogActivityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&LogActivityRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let activity = check(
                request
                    .activity
                    .ok_or_else(|| Error::invalid("activity", "is required"))?,
                &caller,
            )?;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                caller.tenant_id,
                "activity",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let existing = visible_activity(&mut tx, &caller, id, false).await?;
                return Ok(LogActivityResponse {
                    activity: Some(existing),
                });
            }
            check_parents(&mut tx, &caller, activity.contact_id, activity.account_id).await?;
            let saved =
                store::insert(&mut tx, caller.tenant_id, &activity, &caller.subject).await?;
            kit::idempotency::remember(
                &mut tx,
                caller.tenant_id,
                "activity",
                &request.request_id,
                &fingerprint,
                activity.id,
            )
            .await?;
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    activity.id,
                    1,
                    &ActivityLogged {
                        activity: Some(saved.clone()),
                        author_scope: Some(kit::access::actor_scope(&caller)),
                    },
                )
                .await?;
            commit(tx).await?;
            Ok(LogActivityResponse {
                activity: Some(saved),
            })
        })
        .await
    }

    async fn get_activity(
        &self,
        request: Request<GetActivityRequest>,
    ) -> Result<Response<GetActivityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetActivityResponse {
                activity: Some(visible_activity(&mut tx, &caller, id, false).await?),
            })
        })
        .await
    }

    async fn update_activity(
        &self,
        request: Request<UpdateActivityRequest>,
    ) -> Result<Response<UpdateActivityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let changes = request
                .activity
                .ok_or_else(|| Error::invalid("activity", "is required"))?;
            let id = parse_id("activity.id", &changes.id)?;
            let paths = request.update_mask.map(|m| m.paths).unwrap_or_default();
            let mut tx = self.0.begin(&caller).await?;
            let before = visible_activity(&mut tx, &caller, id, true).await?;
            check_version(
                "activity",
                &before.id,
                request.expected_version,
                version_of(&before.audit),
            )?;
            let mut merged = before.clone();
            apply_activity_mask(&mut merged, changes, &paths, "update_mask")?;
            // Completion goes through CompleteTask, never through an update.
            let completed = before.task.as_ref().and_then(|t| t.completed_at);
            if let Some(task) = merged.task.as_mut() {
                task.completed_at = completed;
            }
            let mut row = check(merged, &caller)?;
            row.id = id;
            let saved = store::update(&mut tx, caller.tenant_id, &row, &caller.subject).await?;
            let changed = changed_activity_fields(&before, &saved);
            let version = saved.audit.as_ref().map(|a| a.version).unwrap_or(0);
            let event = ActivityUpdated {
                activity: Some(saved.clone()),
                changed_fields: changed,
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version, &event)
                .await?;
            commit(tx).await?;
            Ok(UpdateActivityResponse {
                activity: Some(saved),
            })
        })
        .await
    }

    async fn delete_activity(
        &self,
        request: Request<DeleteActivityRequest>,
    ) -> Result<Response<DeleteActivityResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Delete)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let activity = visible_activity(&mut tx, &caller, id, true).await?;
            let version = activity.audit.as_ref().map(|a| a.version).unwrap_or(0) + 1;
            store::delete(&mut tx, caller.tenant_id, id).await?;
            let event = ActivityDeleted {
                activity_id: id.to_string(),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version, &event)
                .await?;
            commit(tx).await?;
            Ok(DeleteActivityResponse {})
        })
        .await
    }

    async fn list_timeline(
        &self,
        request: Request<ListTimelineRequest>,
    ) -> Result<Response<ListTimelineResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let page = Page::<(DateTime<Utc>, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let (column, parent) =
                match (request.contact_id.is_empty(), request.account_id.is_empty()) {
                    (false, true) => {
                        let id = parse_id("contact_id", &request.contact_id)?;
                        visible_contact(&mut tx, &caller, id, false).await?;
                        ("contact_id", id)
                    }
                    (true, false) => {
                        let id = parse_id("account_id", &request.account_id)?;
                        visible_account(&mut tx, &caller, id, false).await?;
                        ("account_id", id)
                    }
                    _ => {
                        return Err(Error::invalid(
                            "contact_id",
                            "set exactly one of contact_id and account_id",
                        ))
                    }
                };
            let rows = store::timeline(
                &mut tx,
                caller.tenant_id,
                column,
                parent,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (activities, next) = finish_page(rows, page.size, |a: &Activity| {
                (
                    time_of(a, |a| a.occurred_at.as_ref()),
                    Uuid::parse_str(&a.id).unwrap_or_default(),
                )
            });
            Ok(ListTimelineResponse {
                activities,
                page: page_response(next),
            })
        })
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let filter = store::TaskFilter {
                assignee: optional_id("assignee_id", &request.assignee_id)
                    .map_err(|v| Error::InvalidArgument(vec![v]))?,
                contact: optional_id("contact_id", &request.contact_id)
                    .map_err(|v| Error::InvalidArgument(vec![v]))?,
                account: optional_id("account_id", &request.account_id)
                    .map_err(|v| Error::InvalidArgument(vec![v]))?,
                include_completed: request.include_completed,
            };
            let page = Page::<(DateTime<Utc>, Uuid)>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::tasks(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                &filter,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (tasks, next) = finish_page(rows, page.size, |a: &Activity| {
                let due = a
                    .task
                    .as_ref()
                    .and_then(|t| t.due_at.as_ref())
                    .and_then(|t| from_timestamp("", t).ok());
                // Matches the store's ordering: undated tasks rank at infinity.
                (
                    due.unwrap_or_else(store::undated),
                    Uuid::parse_str(&a.id).unwrap_or_default(),
                )
            });
            Ok(ListTasksResponse {
                tasks,
                page: page_response(next),
            })
        })
        .await
    }

    async fn complete_task(
        &self,
        request: Request<CompleteTaskRequest>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let task = visible_activity(&mut tx, &caller, id, true).await?;
            let Some(details) = task.task.as_ref() else {
                return Err(Error::FailedPrecondition(
                    "this activity is not a task".into(),
                ));
            };
            if details.completed_at.is_some() {
                return Ok(CompleteTaskResponse { task: Some(task) });
            }
            let done = store::complete(&mut tx, caller.tenant_id, id, &caller.subject).await?;
            let version = done.audit.as_ref().map(|a| a.version).unwrap_or(0);
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    id,
                    version,
                    &TaskCompleted {
                        task: Some(done.clone()),
                    },
                )
                .await?;
            commit(tx).await?;
            Ok(CompleteTaskResponse { task: Some(done) })
        })
        .await
    }
}
