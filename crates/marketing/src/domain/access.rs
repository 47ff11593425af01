//! Who may do what in the marketing service. Campaigns are readable by
//! every role that reads marketing records (a rep looks up the campaign a
//! lead came from); changing one also needs the caller's visibility to
//! cover its owner or team ([`kit::access::Scope`]).

use kit::auth::{CallerContext, Role};
use kit::Error;

pub use kit::access::{scope, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    /// Campaigns, their costs and members.
    Write,
    /// Sending settings: suppression lists (and reading the addresses in
    /// them), sender identities.
    Configure,
    /// Sending messages; reading who a send went to.
    Send,
    /// Redeeming a contact's points or a coupon (front-line roles too).
    Redeem,
    /// Recording opens, clicks, unsubscribes and form submissions from the
    /// gateway's public routes: service callers only.
    Track,
}

impl Action {
    fn scope(self) -> &'static str {
        match self {
            Action::Read => "marketing:read",
            _ => "marketing:write",
        }
    }
}

/// The permission matrix of this service.
pub fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    if action == Track {
        return role == Role::Service;
    }
    if action == Redeem {
        return role != Role::Viewer;
    }
    match role {
        Role::Admin | Role::Service | Role::Manager | Role::Marketer => true,
        Role::SalesRep | Role::SupportAgent | Role::Viewer => matches!(action, Read),
    }
}

pub fn authorize(caller: &CallerContext, action: Action) -> Result<(), Error> {
    if !caller.roles.iter().any(|role| role_allows(*role, action)) {
        let what = match action {
            Action::Read => "read marketing records",
            Action::Write => "create or change campaigns",
            Action::Configure => "read or change suppression lists or sender identities",
            Action::Send => "send messages or read their recipients",
            Action::Redeem => "redeem points or coupons",
            Action::Track => {
                "record opens, clicks, unsubscribes or form submissions (the gateway does)"
            }
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
    fn marketers_write_and_reps_read() {
        assert!(role_allows(Role::Marketer, Action::Write));
        assert!(role_allows(Role::Marketer, Action::Configure));
        assert!(role_allows(Role::SalesRep, Action::Read));
        assert!(!role_allows(Role::SalesRep, Action::Write));
        assert!(!role_allows(Role::Viewer, Action::Configure));
        assert!(!role_allows(Role::SalesRep, Action::Send));
        assert!(!role_allows(Role::Admin, Action::Track));
        assert!(role_allows(Role::Service, Action::Track));
        assert!(role_allows(Role::SupportAgent, Action::Redeem));
        assert!(!role_allows(Role::Viewer, Action::Redeem));
    }
}
