//! Who may do what in the service desk. Support agents, managers (the
//! supervisors) and admins work tickets; managers and admins set business
//! calendars and SLA policies; every other role reads the
//! tickets its visibility covers ([`kit::access::Scope`]: an agent with
//! team visibility sees their groups' tickets and those assigned to them).

use kit::auth::{CallerContext, Role};
use kit::Error;

pub use kit::access::{scope, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    /// Tickets: create, change, reply, note.
    Write,
    /// Business calendars and SLA policies.
    Configure,
}

impl Action {
    fn scope(self) -> &'static str {
        match self {
            Action::Read => "servicedesk:read",
            Action::Write | Action::Configure => "servicedesk:write",
        }
    }
}

/// The permission matrix of this service.
pub fn role_allows(role: Role, action: Action) -> bool {
    match role {
        Role::Admin | Role::Service | Role::Manager => true,
        Role::SupportAgent => action != Action::Configure,
        Role::SalesRep | Role::Marketer | Role::Viewer => action == Action::Read,
    }
}

pub fn authorize(caller: &CallerContext, action: Action) -> Result<(), Error> {
    if !caller.roles.iter().any(|role| role_allows(*role, action)) {
        let what = match action {
            Action::Read => "read tickets",
            Action::Write => "create or change tickets",
            Action::Configure => "change business calendars or SLA policies",
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
    fn agents_work_tickets_and_others_read_them() {
        assert!(role_allows(Role::SupportAgent, Action::Write));
        assert!(role_allows(Role::Manager, Action::Write));
        assert!(role_allows(Role::SalesRep, Action::Read));
        assert!(!role_allows(Role::SalesRep, Action::Write));
        assert!(!role_allows(Role::Viewer, Action::Write));
        assert!(role_allows(Role::Manager, Action::Configure));
        assert!(!role_allows(Role::SupportAgent, Action::Configure));
    }
}
