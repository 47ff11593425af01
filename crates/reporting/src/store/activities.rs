//! Activities logged in customers, as projected (kind, owner, when), and
//! the activity dashboard's counts per rep.

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::Activity;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use super::{id, time, within, Selection};
use crate::domain::Period;

/// An activity as logged or changed; `team` is its author's first team.
pub async fn logged(
    tx: &mut PgConnection,
    tenant: Uuid,
    a: &Activity,
    team: Option<Uuid>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let occurred_at = time(a.occurred_at.as_ref())
        .or_else(|| time(a.audit.as_ref().and_then(|a| a.created_at.as_ref())))
        .unwrap_or(at);
    sqlx::query(
        "INSERT INTO activities (tenant_id, id, kind, owner_id, team_id, account_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, id) DO UPDATE SET kind = EXCLUDED.kind, owner_id = EXCLUDED.owner_id, \
         team_id = coalesce(EXCLUDED.team_id, activities.team_id), account_id = EXCLUDED.account_id, occurred_at = EXCLUDED.occurred_at",
    )
    .bind(tenant)
    .bind(id(&a.id))
    .bind(a.kind as i16)
    .bind(id(&a.owner_id))
    .bind(team)
    .bind(id(&a.account_id))
    .bind(occurred_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn completed(
    tx: &mut PgConnection,
    tenant: Uuid,
    task: &str,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE activities SET completed_at = coalesce(completed_at, $3) WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id(task))
    .bind(at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn deleted(tx: &mut PgConnection, tenant: Uuid, activity: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM activities WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id(activity))
        .execute(tx)
        .await?;
    Ok(())
}

/// One rep's activities in the period, by kind (the source's
/// ActivityKind numbers), and the tasks they completed in it.
#[derive(sqlx::FromRow, Debug, Default, PartialEq, Eq)]
pub struct RepCounts {
    pub owner_id: Option<Uuid>,
    pub calls: i64,
    pub emails: i64,
    pub meetings: i64,
    pub chats: i64,
    pub notes: i64,
    pub tasks_created: i64,
    pub tasks_completed: i64,
}

/// The most reps one answer lists, busiest first.
pub const REP_LIMIT: i64 = 200;

/// Per rep (owner) when `per_rep`, busiest first; else one row over
/// everyone the selection covers (no owner).
pub async fn counts(
    tx: &mut PgConnection,
    s: &Selection<'_>,
    p: Period,
    per_rep: bool,
) -> sqlx::Result<Vec<RepCounts>> {
    let mut query = QueryBuilder::new(if per_rep {
        "SELECT owner_id"
    } else {
        "SELECT NULL::uuid AS owner_id"
    });
    for (name, kind) in [
        ("calls", 2),
        ("emails", 3),
        ("meetings", 4),
        ("chats", 5),
        ("notes", 1),
        ("tasks_created", 6),
    ] {
        query.push(format!(", count(*) FILTER (WHERE kind = {kind} AND "));
        within(&mut query, "occurred_at", p);
        query.push(format!(") AS {name}"));
    }
    query.push(", count(*) FILTER (WHERE ");
    within(&mut query, "completed_at", p);
    query.push(") AS tasks_completed");
    s.push_from(&mut query, "activities");
    query.push(" AND ((");
    within(&mut query, "occurred_at", p);
    query.push(") OR (");
    within(&mut query, "completed_at", p);
    query.push("))");
    if per_rep {
        query.push(
            " AND owner_id IS NOT NULL GROUP BY owner_id ORDER BY count(*) DESC, owner_id LIMIT ",
        );
        query.push_bind(REP_LIMIT);
    }
    query.build_query_as().fetch_all(tx).await
}
