//! UTC time on the wire: `google.protobuf.Timestamp` <-> `chrono`.

use chrono::{DateTime, Utc};

pub fn to_timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn to_optional_timestamp(time: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    time.map(to_timestamp)
}

/// A request's timestamp; `field` names it if it is out of range.
pub fn from_timestamp(
    field: &str,
    timestamp: &prost_types::Timestamp,
) -> crate::Result<DateTime<Utc>> {
    u32::try_from(timestamp.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(timestamp.seconds, nanos))
        .ok_or_else(|| crate::Error::invalid(field, "is not a valid timestamp"))
}

pub fn from_optional_timestamp(
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> crate::Result<Option<DateTime<Utc>>> {
    timestamp.map(|t| from_timestamp(field, t)).transpose()
}
