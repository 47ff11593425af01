//! Roles and the record visibility they carry in tokens.

use kit::auth::{Role, Visibility};

pub fn parse(name: &str) -> Option<Role> {
    match name {
        "admin" => Some(Role::Admin),
        "manager" => Some(Role::Manager),
        "sales_rep" => Some(Role::SalesRep),
        "support_agent" => Some(Role::SupportAgent),
        "marketer" => Some(Role::Marketer),
        "viewer" => Some(Role::Viewer),
        _ => None,
    }
}

pub fn name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Manager => "manager",
        Role::SalesRep => "sales_rep",
        Role::SupportAgent => "support_agent",
        Role::Marketer => "marketer",
        Role::Viewer => "viewer",
        Role::Service => "service",
    }
}

/// The widest visibility any of the roles grants: sales reps see their own
/// records, support agents their team's, everyone else the whole tenant.
pub fn visibility(roles: &[Role]) -> Visibility {
    roles
        .iter()
        .map(|role| match role {
            Role::SalesRep => Visibility::Own,
            Role::SupportAgent => Visibility::Team,
            _ => Visibility::Tenant,
        })
        .max()
        .unwrap_or(Visibility::Own)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_is_the_widest_of_the_roles() {
        assert_eq!(visibility(&[Role::SalesRep]), Visibility::Own);
        assert_eq!(
            visibility(&[Role::SalesRep, Role::SupportAgent]),
            Visibility::Team
        );
        assert_eq!(visibility(&[Role::Viewer]), Visibility::Tenant);
        assert_eq!(parse("sales_rep"), Some(Role::SalesRep));
        assert_eq!(parse("root"), None);
    }
}
