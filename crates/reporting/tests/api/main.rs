//! Reporting tests through its gRPC API, beside real customers, sales and
//! service desk services publishing real events, on real PostgreSQL and
//! NATS.

mod customers;
mod harness;
mod marketing;
mod reports;
mod rollups;
mod sales;
mod service;
