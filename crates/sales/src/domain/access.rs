//! Who may do what in the sales service. Roles decide actions; the token's
//! visibility decides which leads and opportunities a caller sees
//! ([`kit::access::Scope`]); invisible records are NOT_FOUND.

use kit::auth::{CallerContext, Role};
use kit::Error;

pub use kit::access::{scope, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    /// Assign leads to others, move them between owners.
    Assign,
    /// Pipelines, routing and scoring rules, quotas.
    Configure,
}

impl Action {
    fn scope(self) -> &'static str {
        match self {
            Action::Read => "sales:read",
            _ => "sales:write",
        }
    }
}

/// The permission matrix of this service.
pub fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin | Role::Service => true,
        Role::Manager => true,
        Role::SalesRep => matches!(action, Read | Write),
        Role::Marketer => matches!(action, Read | Write),
        Role::SupportAgent | Role::Viewer => matches!(action, Read),
    }
}

pub fn authorize(caller: &CallerContext, action: Action) -> Result<(), Error> {
    if !caller.roles.iter().any(|role| role_allows(*role, action)) {
        let what = match action {
            Action::Read => "read sales records",
            Action::Write => "create or change sales records",
            Action::Assign => "assign leads",
            Action::Configure => "configure pipelines, routing, scoring or quotas",
        };
        return Err(Error::PermissionDenied(format!("your role may not {what}")));
    }
    if caller.lacks_scope(action.scope()) {
        return Err(Error::PermissionDenied(format!(
            "this API key lacks the {} scope",
            action.scope()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reps_sell_but_do_not_configure() {
        assert!(role_allows(Role::SalesRep, Action::Write));
        assert!(!role_allows(Role::SalesRep, Action::Configure));
        assert!(!role_allows(Role::Viewer, Action::Write));
        assert!(role_allows(Role::Manager, Action::Assign));
    }
}
