//! Who may do what in the customers service.
//!
//! Roles decide the actions; the token's visibility (own / team / tenant)
//! decides which records a caller sees. A record the caller cannot see is
//! reported NOT_FOUND, so its existence does not leak. API keys are further
//! limited by their scopes (`customers:read`, `customers:write`).

use kit::auth::{CallerContext, Role, Visibility};
use kit::Error;
use uuid::Uuid;

/// Actions guarded by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    Delete,
    Merge,
    TransferOwnership,
    ImportExport,
    DefineFields,
    Erase,
}

impl Action {
    fn scope(self) -> &'static str {
        match self {
            Action::Read => "customers:read",
            _ => "customers:write",
        }
    }
}

/// The permission matrix of this service.
pub fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin | Role::Service => true,
        Role::Manager => !matches!(action, Erase | DefineFields),
        Role::SalesRep | Role::SupportAgent => matches!(action, Read | Write | Delete),
        Role::Marketer => matches!(action, Read | Write | ImportExport),
        Role::Viewer => matches!(action, Read),
    }
}

/// Refuses the call unless one of the caller's roles allows `action` and,
/// for API keys, the key carries the action's scope.
pub fn authorize(caller: &CallerContext, action: Action) -> Result<(), Error> {
    if !caller.roles.iter().any(|role| role_allows(*role, action)) {
        return Err(Error::PermissionDenied(format!(
            "your role may not {}",
            describe(action)
        )));
    }
    if caller.lacks_scope(action.scope()) {
        return Err(Error::PermissionDenied(format!(
            "this API key lacks the {} scope",
            action.scope()
        )));
    }
    Ok(())
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Read => "read customer records",
        Action::Write => "create or change customer records",
        Action::Delete => "delete customer records",
        Action::Merge => "merge customer records",
        Action::TransferOwnership => "transfer record ownership",
        Action::ImportExport => "import or export customer data",
        Action::DefineFields => "define custom fields",
        Action::Erase => "erase personal data",
    }
}

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_only_read_and_only_admins_erase() {
        assert!(role_allows(Role::Viewer, Action::Read));
        assert!(!role_allows(Role::Viewer, Action::Write));
        assert!(!role_allows(Role::Manager, Action::Erase));
        assert!(role_allows(Role::Admin, Action::Erase));
        assert!(!role_allows(Role::SalesRep, Action::Merge));
    }

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
