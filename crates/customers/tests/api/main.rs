//! Customers service tests through its public gRPC API, against real
//! PostgreSQL and NATS: each test starts the service on free ports with its
//! own database and NATS prefix.

mod accounts;
mod activities;
mod contacts;
mod data;
mod faults;
mod harness;
mod merge;
mod migrate;
mod reflection;
mod segments;
mod visibility;
