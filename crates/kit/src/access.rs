//! Record visibility shared by every service: the token's visibility (own /
//! team / tenant) becomes a [`Scope`] that filters SQL and checks single
//! records. Which roles may do which actions stays with each service.

use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::auth::{CallerContext, Role, Visibility};

/// Which records a caller sees, as a SQL-ready scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Team {
        user: Option<Uuid>,
        teams: Vec<Uuid>,
    },
    Own {
        user: Option<Uuid>,
    },
}

pub fn scope(caller: &CallerContext) -> Scope {
    if caller.has_role(Role::Service) {
        return Scope::Tenant;
    }
    match caller.visibility {
        Visibility::Tenant => Scope::Tenant,
        Visibility::Team => Scope::Team {
            user: caller.user_id,
            teams: caller.teams.clone(),
        },
        Visibility::Own => Scope::Own {
            user: caller.user_id,
        },
    }
}

/// The caller's visibility as carried by an event ([`ActorScope`]), for
/// consumers that act on the caller's behalf.
///
/// [`ActorScope`]: crm_proto::crm::common::v1::ActorScope
pub fn actor_scope(caller: &CallerContext) -> crm_proto::crm::common::v1::ActorScope {
    use crm_proto::crm::common::v1::{ActorScope, ActorVisibility};
    let (visibility, teams) = match scope(caller) {
        Scope::Tenant => (ActorVisibility::Tenant, Vec::new()),
        Scope::Team { teams, .. } => (ActorVisibility::Team, teams),
        Scope::Own { .. } => (ActorVisibility::Own, Vec::new()),
    };
    ActorScope {
        user_id: caller.user_id.map(|u| u.to_string()).unwrap_or_default(),
        team_ids: teams.iter().map(Uuid::to_string).collect(),
        visibility: visibility as i32,
    }
}

/// The [`Scope`] an event's actor had; none (an older event) sees nothing.
pub fn scope_of_actor(actor: Option<&crm_proto::crm::common::v1::ActorScope>) -> Scope {
    use crm_proto::crm::common::v1::ActorVisibility;
    let Some(actor) = actor else {
        return Scope::Own { user: None };
    };
    let user = Uuid::parse_str(&actor.user_id).ok();
    match ActorVisibility::try_from(actor.visibility) {
        Ok(ActorVisibility::Tenant) => Scope::Tenant,
        Ok(ActorVisibility::Team) => Scope::Team {
            user,
            teams: actor
                .team_ids
                .iter()
                .filter_map(|t| Uuid::parse_str(t).ok())
                .collect(),
        },
        _ => Scope::Own { user },
    }
}

/// A create retried with a `request_id` answers with the record the first
/// call made only to the caller who made it or one who may see it; anyone
/// else learns nothing about that record, only that the id is taken.
pub fn check_replay(
    caller: &CallerContext,
    created_by: &str,
    owner_id: &str,
    team_id: &str,
) -> crate::Result<()> {
    let owner = Uuid::parse_str(owner_id).ok();
    let team = Uuid::parse_str(team_id).ok();
    if created_by == caller.subject || scope(caller).sees(owner, team) {
        Ok(())
    } else {
        Err(crate::Error::AlreadyExists(
            "request_id is already used by another caller; use a new one".into(),
        ))
    }
}

impl Scope {
    /// Whether a record with this owner and team is visible.
    pub fn sees(&self, owner: Option<Uuid>, team: Option<Uuid>) -> bool {
        match self {
            Scope::Tenant => true,
            Scope::Team { user, teams } => {
                (owner.is_some() && owner == *user)
                    || team.is_some_and(|team| teams.contains(&team))
            }
            Scope::Own { user } => owner.is_some() && owner == *user,
        }
    }

    /// `SELECT <columns> FROM <table>` of one record by id, if this scope
    /// sees it; `FOR UPDATE` when `lock`. The one way to fetch a single
    /// visible record: what the caller may not see is simply not found.
    pub fn select_one<'a>(
        &self,
        columns: &str,
        table: &str,
        tenant: Uuid,
        id: Uuid,
        lock: bool,
    ) -> QueryBuilder<'a, Postgres> {
        self.select_one_or_assigned(columns, table, tenant, id, lock, None)
    }

    /// [`Scope::select_one`] for records their assignee sees too (tasks):
    /// `assigned` names the assignee column and the caller's user id.
    pub fn select_one_or_assigned<'a>(
        &self,
        columns: &str,
        table: &str,
        tenant: Uuid,
        id: Uuid,
        lock: bool,
        assigned: Option<(&str, Option<Uuid>)>,
    ) -> QueryBuilder<'a, Postgres> {
        let mut query =
            QueryBuilder::new(format!("SELECT {columns} FROM {table} WHERE tenant_id = "));
        query.push_bind(tenant).push(" AND id = ").push_bind(id);
        if *self != Scope::Tenant {
            query.push(" AND (");
            self.push_condition(&mut query);
            if let Some((column, user)) = assigned {
                query.push(format!(" OR {column} = ")).push_bind(user);
            }
            query.push(")");
        }
        if lock {
            query.push(" FOR UPDATE");
        }
        query
    }

    /// Appends ` AND <visible>` over the `owner_id` / `team_id` columns.
    pub fn push_sql(&self, query: &mut QueryBuilder<'_, Postgres>) {
        if *self != Scope::Tenant {
            query.push(" AND ");
            self.push_condition(query);
        }
    }

    /// The visibility condition as one parenthesised SQL expression.
    pub fn push_condition(&self, query: &mut QueryBuilder<'_, Postgres>) {
        match self {
            Scope::Tenant => {
                query.push("TRUE");
            }
            Scope::Team { user, teams } => {
                query
                    .push("(owner_id = ")
                    .push_bind(*user)
                    .push(" OR team_id = ANY(")
                    .push_bind(teams.clone())
                    .push("))");
            }
            Scope::Own { user } => {
                query.push("(owner_id = ").push_bind(*user).push(")");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_see_own_team_or_all() {
        let (me, other, team) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let own = Scope::Own { user: Some(me) };
        assert!(own.sees(Some(me), None));
        assert!(!own.sees(Some(other), Some(team)));
        let team_scope = Scope::Team {
            user: Some(me),
            teams: vec![team],
        };
        assert!(team_scope.sees(Some(other), Some(team)));
        assert!(!team_scope.sees(Some(other), None));
        assert!(Scope::Tenant.sees(None, None));
    }
}
