//! Who may read what: every role reads dashboards, counted over the
//! records its visibility covers ([`kit::access::Scope`]): a rep with team
//! visibility counts their teams' and their own records, not the whole
//! tenant's.

use kit::auth::CallerContext;
use kit::Error;

pub use kit::access::{scope, Scope};

/// The API key scope reading reports needs.
const READ_SCOPE: &str = "reporting:read";

pub fn authorize_read(caller: &CallerContext) -> Result<(), Error> {
    if caller.lacks_scope(READ_SCOPE) {
        return Err(Error::PermissionDenied(format!(
            "this API key lacks the {READ_SCOPE} scope"
        )));
    }
    Ok(())
}
