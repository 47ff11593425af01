//! Who may do what in the customers service.
//!
//! Roles decide the actions; the token's visibility (own / team / tenant)
//! decides which records a caller sees. A record the caller cannot see is
//! reported NOT_FOUND, so its existence does not leak. API keys are further
//! limited by their scopes (`customers:read`, `customers:write`).

use kit::auth::{CallerContext, Role};
use kit::Error;

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

pub use kit::access::{scope, Scope};

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
}
