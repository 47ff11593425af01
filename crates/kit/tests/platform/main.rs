//! Integration tests of the platform kit against real PostgreSQL and NATS.

mod auth;
mod common;
mod events;
mod nats_fault;
mod rls;
mod service;
