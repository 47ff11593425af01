//! What the customers service publishes and schedules. The payloads and
//! their event types are declared with the contract, in
//! `crm_proto::events`; events are written to the outbox inside the
//! transaction of each change (see the handlers in `grpc/`).

pub mod reminders;
pub mod sales;
