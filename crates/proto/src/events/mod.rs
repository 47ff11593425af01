//! Domain event types: which protobuf payload travels under which event
//! type. Kept beside the generated messages, so producers and consumers
//! share one definition of the contract.

mod customers;
mod marketing;
mod reporting;
mod sales;
mod servicedesk;

/// A protobuf payload that is published as a domain event.
pub trait DomainEvent: prost::Message + Default {
    /// Versioned event type, `crm.<domain>.<entity>.<verb>.v<N>`.
    const TYPE: &'static str;
    /// Fully qualified protobuf message name of the payload.
    const SCHEMA: &'static str;

    /// The type of this event; payloads shared by several entities (e.g. a
    /// lifecycle change of a contact or an account) choose it by content.
    fn event_type(&self) -> &'static str {
        Self::TYPE
    }
}

/// Declares the event type of payloads with a fixed type.
macro_rules! domain_events {
    ($package:literal, $module:ident, { $($payload:ident => $type:literal),* $(,)? }) => {
        $(
            impl $crate::events::DomainEvent for $module::$payload {
                const TYPE: &'static str = $type;
                const SCHEMA: &'static str = concat!($package, ".", stringify!($payload));
            }
        )*
    };
}
pub(crate) use domain_events;
