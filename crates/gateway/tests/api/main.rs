//! Gateway tests: the REST API in front of a real customers service, both on
//! real PostgreSQL and NATS.

mod flows;
mod harness;
mod keys;
mod marketing;
mod reports;
mod resources;
mod sales;
mod transcoded;
