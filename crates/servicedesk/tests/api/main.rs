//! Service desk tests through its gRPC API, beside a real customers
//! service, on real PostgreSQL and NATS.

mod actions;
mod chat;
mod feedback;
mod harness;
mod knowledge;
mod mail;
mod orders;
mod portal;
mod routing;
mod slas;
mod tickets;
