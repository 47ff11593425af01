//! Events this service consumes from the marketing service:
//! - `message.clicked`: the unconverted leads with the e-mail address the
//!   message went to (matched by hash: the event names no address) earn
//!   the `email_clicked` engagement and are rescored;
//! - `form.submitted`: a lead-capture form's submission becomes a lead
//!   (source web form, the form's campaign attached), routed and scored
//!   like any lead. The submission id is the lead's request id, so a
//!   submission never makes two leads.

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::marketing::v1 as marketing;
use crm_proto::events::DomainEvent;
use kit::access::Scope;
use kit::auth::CallerContext;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use uuid::Uuid;

use crm_proto::crm::sales::v1::{Lead, LeadSource};
use kit::error::Violations;

use crate::domain::lead;
use crate::grpc::SharedState;
use crate::store::leads;

pub struct MarketingEvents(pub SharedState);

impl EventHandler for MarketingEvents {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        match event.r#type.as_str() {
            <marketing::MessageClicked as DomainEvent>::TYPE => {
                self.clicked(tx, tenant, event).await
            }
            <marketing::FormSubmitted as DomainEvent>::TYPE => {
                let submitted: marketing::FormSubmitted = decode_data(event)?;
                self.submitted(tx, tenant, submitted).await
            }
            _ => Ok(()),
        }
    }
}

impl MarketingEvents {
    async fn submitted(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        submitted: marketing::FormSubmitted,
    ) -> anyhow::Result<()> {
        let Some(submission) = submitted.submission else {
            return Ok(());
        };
        let request_id = format!("form-submission:{}", submission.id);
        if leads::by_request(tx, tenant, &request_id).await?.is_some() {
            return Ok(());
        }
        let given = submission.lead.unwrap_or_default();
        let mut made = Lead {
            first_name: given.first_name,
            last_name: given.last_name,
            email: given.email,
            phone: given.phone,
            title: given.title,
            company: given.company,
            company_domain: given.company_domain,
            source: LeadSource::WebForm as i32,
            campaign_id: submission.campaign_id,
            country: given.country,
            region: given.region,
            industry: given.industry,
            company_size: given.company_size,
            ..Default::default()
        };
        let mut violations = Violations::new();
        lead::normalize(&mut made, &mut violations);
        if let Err(refused) = violations.into_result() {
            // Marketing checks each value as strictly; a submission that
            // still fails here is reported, not retried forever.
            tracing::warn!(submission = %submission.id, error = %refused, "form submission makes no lead");
            return Ok(());
        }
        let caller = CallerContext::system("sales", tenant);
        crate::grpc::leads::insert_lead(&self.0, tx, &caller, made, Some(&request_id)).await?;
        Ok(())
    }

    async fn clicked(&self, tx: &mut TenantTx, tenant: Uuid, event: &Event) -> anyhow::Result<()> {
        let clicked: marketing::MessageClicked = decode_data(event)?;
        if clicked.address_hash.is_empty() {
            return Ok(());
        }
        let at = event
            .occurred_at
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(chrono::Utc::now);
        let caller = CallerContext::system("sales", tenant);
        for lead in leads::unconverted_with_email(tx, tenant, &clicked.address_hash).await? {
            crate::grpc::leads::engage(
                &self.0,
                tx,
                &caller,
                &Scope::Tenant,
                lead,
                "email_clicked",
                at,
            )
            .await?;
        }
        Ok(())
    }
}
