//! SQL of the marketing service. Every function runs inside a caller's
//! (or an event's) tenant-scoped transaction; row-level security is the
//! second fence.

pub mod attribution;
pub mod automations;
pub mod campaigns;
pub mod consent;
pub mod forms;
pub mod journeys;
pub mod loyalty;
pub mod members;
pub mod messages;

use crm_proto::crm::common::v1::Money;
use rust_decimal::Decimal;
use uuid::Uuid;

pub use kit::rpc::audit;

pub fn id_text(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// An amount in a currency as `Money`; none without an amount.
pub fn money(amount: Option<Decimal>, currency: &str) -> Option<Money> {
    amount.map(|amount| Money {
        amount: amount.normalize().to_string(),
        currency: currency.to_owned(),
    })
}
