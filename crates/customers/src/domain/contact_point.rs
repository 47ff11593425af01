//! E-mail addresses and phone numbers: the platform's parse-only types,
//! shared with marketing (suppressions, sends).

pub use kit::contact_point::*;
