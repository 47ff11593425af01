//! Tags: the platform's one rule for labels, shared by every service.

pub use kit::tags::*;
