//! Marketing service tests through its gRPC API, beside a real customers
//! service, on real PostgreSQL and NATS.

mod automations;
mod campaigns;
mod consent;
mod forms;
mod harness;
mod journeys;
mod loyalty;
mod sends;
