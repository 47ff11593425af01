//! Who may read what: every role reads dashboards and reports, counted
//! over the records its visibility covers ([`kit::access::Scope`]): a rep
//! with team visibility counts their teams' and their own records, not the
//! whole tenant's. Every role but viewers saves reports.

use kit::auth::{CallerContext, Role};
use kit::Error;

pub use kit::access::{scope, Scope};

/// The API key scopes reading reports and saving them need.
const READ_SCOPE: &str = "reporting:read";
const WRITE_SCOPE: &str = "reporting:write";

pub fn authorize_read(caller: &CallerContext) -> Result<(), Error> {
    if caller.lacks_scope(READ_SCOPE) {
        return Err(Error::PermissionDenied(format!(
            "this API key lacks the {READ_SCOPE} scope"
        )));
    }
    Ok(())
}

/// Saving reports and report dashboards: every role but viewers.
pub fn authorize_write(caller: &CallerContext) -> Result<(), Error> {
    if caller.lacks_scope(WRITE_SCOPE) {
        return Err(Error::PermissionDenied(format!(
            "this API key lacks the {WRITE_SCOPE} scope"
        )));
    }
    if caller.roles.iter().all(|r| *r == Role::Viewer) {
        return Err(Error::PermissionDenied(
            "viewers read reports; saving them needs another role".into(),
        ));
    }
    Ok(())
}
