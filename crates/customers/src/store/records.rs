//! Statements that are the same for the accounts and contacts tables:
//! soft delete, owner transfer, and the visible-rows query every list,
//! count and export starts from.

use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::push_scope;
use crate::domain::access::Scope;
use crate::domain::filter::FilterExpr;

/// A table of records with owner, team, version and soft delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Accounts,
    Contacts,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Accounts => "accounts",
            Table::Contacts => "contacts",
        }
    }
}

/// Marks a record deleted; returns its new version.
pub async fn soft_delete(
    tx: &mut PgConnection,
    table: Table,
    tenant: Uuid,
    id: Uuid,
    actor: &str,
) -> sqlx::Result<i64> {
    let (version,): (i64,) = sqlx::query_as(&format!(
        "UPDATE {} SET deleted_at = now(), updated_at = now(), updated_by = $3, version = version + 1
          WHERE tenant_id = $1 AND id = $2 RETURNING version",
        table.name()
    ))
    .bind(tenant)
    .bind(id)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(version)
}

/// `SELECT <columns> FROM <table>` of the live rows the caller may see,
/// narrowed by `filter`; callers append paging and order.
pub fn select_visible<'a>(
    table: Table,
    columns: &str,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
) -> QueryBuilder<'a, Postgres> {
    let mut query = QueryBuilder::new(format!(
        "SELECT {columns} FROM {} WHERE tenant_id = ",
        table.name()
    ));
    query.push_bind(tenant).push(" AND deleted_at IS NULL");
    push_scope(&mut query, scope);
    super::filter_sql::push_filter(&mut query, filter);
    query
}

/// Moves the visible records of `from` (narrowed by `filter`) to `to`;
/// returns the ids moved.
#[allow(clippy::too_many_arguments)]
pub async fn transfer(
    tx: &mut PgConnection,
    table: Table,
    tenant: Uuid,
    scope: &Scope,
    from: Uuid,
    to: Uuid,
    to_team: Option<Uuid>,
    filter: Option<&FilterExpr>,
    actor: &str,
) -> sqlx::Result<Vec<Uuid>> {
    let mut query = QueryBuilder::new(format!("UPDATE {} SET owner_id = ", table.name()));
    query
        .push_bind(to)
        .push(", team_id = coalesce(")
        .push_bind(to_team)
        .push(", team_id), updated_at = now(), updated_by = ")
        .push_bind(actor.to_owned())
        .push(", version = version + 1 WHERE tenant_id = ")
        .push_bind(tenant)
        .push(" AND deleted_at IS NULL AND owner_id = ")
        .push_bind(from);
    push_scope(&mut query, scope);
    super::filter_sql::push_filter(&mut query, filter);
    query.push(" RETURNING id");
    let rows: Vec<(Uuid,)> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
