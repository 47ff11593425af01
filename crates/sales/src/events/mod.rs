//! Events this service consumes from the customers service:
//! - `contact.merged` / `account.merged`: references move to the survivor;
//! - `contact.erased`: leads that became that contact, and unconverted ones
//!   with one of its e-mail addresses or phones, lose their PII;
//! - `activity.logged`: a meeting related to a lead (`related` kind `lead`)
//!   is an engagement that scores, for leads the meeting's author sees.

pub mod decay;
pub mod marketing;
pub mod overdue;

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::events::DomainEvent;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crate::grpc::SharedState;
use crate::store::{leads, opportunities};

pub struct CustomerEvents(pub SharedState);

impl EventHandler for CustomerEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        match event.r#type.as_str() {
            <customers::AccountMerged as DomainEvent>::TYPE => {
                let merged: customers::AccountMerged = decode_data(event)?;
                let (from, to) = (
                    Uuid::parse_str(&merged.merged_id)?,
                    Uuid::parse_str(&merged.survivor_id)?,
                );
                opportunities::repoint_account(tx, tenant, from, to).await?;
                leads::repoint(tx, tenant, "account", from, to).await?;
            }
            <customers::ContactMerged as DomainEvent>::TYPE => {
                let merged: customers::ContactMerged = decode_data(event)?;
                let (from, to) = (
                    Uuid::parse_str(&merged.merged_id)?,
                    Uuid::parse_str(&merged.survivor_id)?,
                );
                opportunities::repoint_contact(tx, tenant, from, to).await?;
                leads::repoint(tx, tenant, "contact", from, to).await?;
            }
            <customers::ContactErased as DomainEvent>::TYPE => {
                let erased: customers::ContactErased = decode_data(event)?;
                let contact = Uuid::parse_str(&erased.contact_id)?;
                leads::anonymise_for_contact(tx, tenant, contact, &erased.contact_point_hashes)
                    .await?;
            }
            <customers::ActivityLogged as DomainEvent>::TYPE => {
                let logged: customers::ActivityLogged = decode_data(event)?;
                let activity = logged.activity.unwrap_or_default();
                if activity.kind != customers::ActivityKind::Meeting as i32 {
                    return Ok(());
                }
                let at = activity
                    .occurred_at
                    .and_then(|t| {
                        chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                    })
                    .unwrap_or_else(chrono::Utc::now);
                // Only leads the author could see when logging the meeting.
                let author = kit::access::scope_of_actor(logged.author_scope.as_ref());
                let caller = CallerContext::system("sales", tenant);
                for related in activity.related.iter().filter(|r| r.kind == "lead") {
                    if let Ok(lead) = Uuid::parse_str(&related.id) {
                        crate::grpc::leads::engage(
                            &self.0,
                            tx,
                            &caller,
                            &author,
                            lead,
                            "meeting_logged",
                            at,
                        )
                        .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
