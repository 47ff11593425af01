//! The platform every CRM service stands on.
//!
//! A service crate holds only its domain: what it stores, what it answers and
//! what it publishes. Everything that would otherwise be written five times
//! lives here, once, and is tested against real PostgreSQL and NATS:
//!
//! - [`config`]: 12-factor configuration with errors that name each variable.
//! - [`telemetry`]: JSON logs, optional OTLP traces, W3C trace context.
//! - [`service`]: gRPC bootstrap (health, reflection, limits, metrics,
//!   graceful shutdown) and the admin HTTP port.
//! - [`db`]: pool, migrations under an advisory lock, tenant-scoped
//!   transactions that row-level security relies on.
//! - [`outbox`] and [`inbox`]: events written in the same transaction as the
//!   change, relayed to JetStream, consumed exactly once.
//! - [`auth`]: bearer token verification and the caller context.
//! - [`error`]: one error type, mapped once to gRPC status with rich details.
//! - [`paging`]: opaque keyset cursors.

pub mod access;
pub mod auth;
pub mod balance;
pub mod clock;
pub mod config;
pub mod contact_point;
pub mod custom_fields;
pub mod db;
pub mod egress;
pub mod error;
pub mod events;
pub mod filter;
pub mod idempotency;
pub mod inbox;
pub mod input;
pub mod links;
pub mod mail;
pub mod mask;
pub mod metrics;
pub mod outbox;
pub mod paging;
pub mod retry;
pub mod rpc;
pub mod scan;
pub mod search;
pub mod service;
pub mod service_tokens;
pub mod streams;
pub mod tags;
pub mod telemetry;
pub mod time;
pub mod values;

pub use error::{Error, ErrorCode, FieldViolation, Result};
pub use tokio_util::sync::{CancellationToken as Shutdown, DropGuard as StopOnDrop};
