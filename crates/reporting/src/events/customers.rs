//! From customers: accounts (created, changed, deleted, moved between
//! lifecycle stages and owners), activities (logged, changed, deleted,
//! tasks completed; a call, e-mail, meeting or chat about a lead answers
//! the lead), account merges (the merged account's deals, orders,
//! invoices and tickets follow the survivor), and contacts as ids,
//! lifecycle and country: reporting keeps nothing that names a person, and
//! a deleted, merged or erased contact's row goes.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use super::{applied, occurred};
use crate::store::{self, accounts, activities, id, leads};

pub struct CustomersEvents;

/// Kinds of activity that answer a lead: someone talked to them.
const ANSWERS: [customers::ActivityKind; 4] = [
    customers::ActivityKind::Call,
    customers::ActivityKind::Email,
    customers::ActivityKind::Meeting,
    customers::ActivityKind::Chat,
];

impl EventHandler for CustomersEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let at = occurred(event);
        match event.r#type.as_str() {
            <customers::AccountCreated as DomainEvent>::TYPE => {
                let created: customers::AccountCreated = decode_data(event)?;
                if let Some(account) = created.account {
                    accounts::account(tx, tenant, &account, at).await?;
                }
            }
            <customers::AccountUpdated as DomainEvent>::TYPE => {
                let updated: customers::AccountUpdated = decode_data(event)?;
                if let Some(account) = updated.account {
                    accounts::account(tx, tenant, &account, at).await?;
                }
            }
            <customers::AccountDeleted as DomainEvent>::TYPE => {
                let deleted: customers::AccountDeleted = decode_data(event)?;
                if let Some(account) = id(&deleted.account_id) {
                    accounts::deleted(tx, tenant, account).await?;
                }
            }
            "crm.customers.account.lifecycle_changed.v1" => {
                let changed: customers::LifecycleStageChanged = decode_data(event)?;
                if let Some(account) = id(&changed.id) {
                    accounts::lifecycle(tx, tenant, account, changed.to).await?;
                }
            }
            "crm.customers.account.owner_transferred.v1" => {
                let moved: customers::OwnerTransferred = decode_data(event)?;
                if let Some(account) = id(&moved.id) {
                    let (owner, team) = (id(&moved.to_owner_id), id(&moved.to_team_id));
                    accounts::owner(tx, tenant, account, owner, team).await?;
                }
            }
            <customers::ContactCreated as DomainEvent>::TYPE => {
                let created: customers::ContactCreated = decode_data(event)?;
                if let Some(contact) = created.contact {
                    accounts::contact(tx, tenant, &contact, at).await?;
                }
            }
            <customers::ContactUpdated as DomainEvent>::TYPE => {
                let updated: customers::ContactUpdated = decode_data(event)?;
                if let Some(contact) = updated.contact {
                    accounts::contact(tx, tenant, &contact, at).await?;
                }
            }
            <customers::ContactDeleted as DomainEvent>::TYPE => {
                let deleted: customers::ContactDeleted = decode_data(event)?;
                if let Some(contact) = id(&deleted.contact_id) {
                    accounts::contact_gone(tx, tenant, contact).await?;
                }
            }
            <customers::ContactMerged as DomainEvent>::TYPE => {
                let merged: customers::ContactMerged = decode_data(event)?;
                if let Some(contact) = id(&merged.merged_id) {
                    accounts::contact_gone(tx, tenant, contact).await?;
                }
            }
            <customers::ContactErased as DomainEvent>::TYPE => {
                let erased: customers::ContactErased = decode_data(event)?;
                if let Some(contact) = id(&erased.contact_id) {
                    accounts::contact_gone(tx, tenant, contact).await?;
                }
            }
            <customers::ActivityLogged as DomainEvent>::TYPE => {
                let logged: customers::ActivityLogged = decode_data(event)?;
                let team = logged
                    .author_scope
                    .as_ref()
                    .and_then(|a| a.team_ids.first())
                    .and_then(|t| id(t));
                let Some(activity) = logged.activity else {
                    return Ok(());
                };
                activities::logged(tx, tenant, &activity, team, at).await?;
                if let Some(account) = id(&activity.account_id) {
                    accounts::churn_due(tx, tenant, account).await?;
                }
                if ANSWERS.iter().any(|k| *k as i32 == activity.kind) {
                    let when = store::time(activity.occurred_at.as_ref()).unwrap_or(at);
                    for lead in activity.related.iter().filter(|r| r.kind == "lead") {
                        if let Some(lead) = id(&lead.id) {
                            leads::answered(tx, tenant, lead, when).await?;
                        }
                    }
                }
            }
            <customers::ActivityUpdated as DomainEvent>::TYPE => {
                let updated: customers::ActivityUpdated = decode_data(event)?;
                if let Some(activity) = updated.activity {
                    activities::logged(tx, tenant, &activity, None, at).await?;
                }
            }
            <customers::ActivityDeleted as DomainEvent>::TYPE => {
                let deleted: customers::ActivityDeleted = decode_data(event)?;
                activities::deleted(tx, tenant, &deleted.activity_id).await?;
            }
            <customers::TaskCompleted as DomainEvent>::TYPE => {
                let completed: customers::TaskCompleted = decode_data(event)?;
                if let Some(task) = completed.task {
                    activities::completed(tx, tenant, &task.id, at).await?;
                }
            }
            <customers::AccountMerged as DomainEvent>::TYPE => {
                let merged: customers::AccountMerged = decode_data(event)?;
                if let (Some(from), Some(into)) = (id(&merged.merged_id), id(&merged.survivor_id)) {
                    store::account_merged(tx, tenant, from, into).await?;
                    accounts::deleted(tx, tenant, from).await?;
                    accounts::churn_due(tx, tenant, into).await?;
                }
            }
            _ => return Ok(()),
        }
        applied(tx, tenant, "customers", at).await?;
        Ok(())
    }
}
