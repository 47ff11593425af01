//! Rules of the service desk, without I/O: what a valid ticket and message
//! are, how a ticket's status may move, business hours, SLA policies and
//! clocks, routing by skill and workload, the knowledge base, the customer portal, and who
//! may do what.

pub mod access;
pub mod actions;
pub mod calendar;
pub mod chat;
pub mod knowledge;
pub mod mail;
pub mod portal;
pub mod routing;
pub mod satisfaction;
pub mod sla;
pub mod ticket;

pub use kit::input::{optional_id, parse_id, text};
