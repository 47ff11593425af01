//! From sales: pipelines, opportunities (created, changed, moved, won,
//! lost), quotas, leads (created, assigned, qualified, converted), orders,
//! invoices and payments.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use super::{applied, occurred};
use crate::store::{accounts, id, leads, sales as deals};

pub struct SalesEvents;

impl EventHandler for SalesEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let at = occurred(event);
        let version = event.aggregate_version;
        // A record carried whole is as new as its own version says.
        let whole = |o: &sales::Opportunity| {
            o.audit
                .as_ref()
                .map(|a| a.version)
                .filter(|v| *v > 0)
                .unwrap_or(version)
        };
        match event.r#type.as_str() {
            <sales::PipelineChanged as DomainEvent>::TYPE => {
                let changed: sales::PipelineChanged = decode_data(event)?;
                deals::pipeline_changed(tx, tenant, &changed).await?;
            }
            <sales::OpportunityCreated as DomainEvent>::TYPE => {
                let created: sales::OpportunityCreated = decode_data(event)?;
                if let Some(o) = created.opportunity {
                    deals::deal(tx, tenant, &o, at, whole(&o)).await?;
                }
            }
            <sales::OpportunityUpdated as DomainEvent>::TYPE => {
                let updated: sales::OpportunityUpdated = decode_data(event)?;
                if let Some(o) = updated.opportunity {
                    deals::deal(tx, tenant, &o, at, whole(&o)).await?;
                }
            }
            <sales::OpportunityStageChanged as DomainEvent>::TYPE => {
                let moved: sales::OpportunityStageChanged = decode_data(event)?;
                match moved.opportunity {
                    Some(o) => deals::deal(tx, tenant, &o, at, whole(&o)).await?,
                    None => {
                        let (deal, stage) = (&moved.opportunity_id, &moved.to_stage_id);
                        deals::moved(tx, tenant, deal, stage, moved.probability, at, version)
                            .await?
                    }
                }
            }
            <sales::OpportunityWon as DomainEvent>::TYPE => {
                let won: sales::OpportunityWon = decode_data(event)?;
                deals::won(tx, tenant, &won, at, version).await?;
            }
            <sales::OpportunityLost as DomainEvent>::TYPE => {
                let lost: sales::OpportunityLost = decode_data(event)?;
                deals::lost(tx, tenant, &lost, at, version).await?;
            }
            <sales::QuotaSet as DomainEvent>::TYPE => {
                let set: sales::QuotaSet = decode_data(event)?;
                if let Some(quota) = set.quota {
                    deals::quota_set(tx, tenant, &quota).await?;
                }
            }
            <sales::LeadCreated as DomainEvent>::TYPE => {
                let created: sales::LeadCreated = decode_data(event)?;
                if let Some(lead) = created.lead {
                    leads::created(tx, tenant, &lead, at).await?;
                }
            }
            <sales::LeadAssigned as DomainEvent>::TYPE => {
                let assigned: sales::LeadAssigned = decode_data(event)?;
                leads::assigned(tx, tenant, &assigned).await?;
            }
            <sales::LeadQualified as DomainEvent>::TYPE => {
                let qualified: sales::LeadQualified = decode_data(event)?;
                if let Some(lead) = id(&qualified.lead_id) {
                    leads::answered(tx, tenant, lead, at).await?;
                }
            }
            <sales::LeadConverted as DomainEvent>::TYPE => {
                let converted: sales::LeadConverted = decode_data(event)?;
                if let Some(lead) = id(&converted.lead_id) {
                    leads::converted(tx, tenant, lead, at).await?;
                }
            }
            <sales::OrderCreated as DomainEvent>::TYPE => {
                let created: sales::OrderCreated = decode_data(event)?;
                if let Some(order) = created.order {
                    accounts::order(tx, tenant, &order, id(&created.account_id), at).await?;
                }
            }
            <sales::InvoiceIssued as DomainEvent>::TYPE => {
                let issued: sales::InvoiceIssued = decode_data(event)?;
                if let Some(invoice) = issued.invoice {
                    accounts::invoice(tx, tenant, &invoice, None).await?;
                }
            }
            <sales::InvoiceOverdue as DomainEvent>::TYPE => {
                let overdue: sales::InvoiceOverdue = decode_data(event)?;
                if let Some(invoice) = overdue.invoice {
                    accounts::invoice(tx, tenant, &invoice, None).await?;
                }
            }
            <sales::PaymentRecorded as DomainEvent>::TYPE => {
                let recorded: sales::PaymentRecorded = decode_data(event)?;
                if let (Some(payment), Some(invoice)) = (recorded.payment, recorded.invoice) {
                    accounts::payment(tx, tenant, &payment, &invoice, at).await?;
                }
            }
            _ => return Ok(()),
        }
        applied(tx, tenant, "sales", at).await?;
        Ok(())
    }
}
