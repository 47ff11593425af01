//! Tasks that SLA escalations ask for: the desk reads its own
//! `sla.escalated` events (the inbox: once per event, in order) and, for a
//! CREATE_TASK escalation, logs a task in the customers service, due at
//! once, about the ticket's requester or account. The event id is the
//! task's `request_id`, so a redelivery never makes a second task; the
//! escalation itself stays in the ticket's transaction and is published
//! exactly once by the outbox.

use std::sync::Arc;

use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::servicedesk::v1::{EscalationAction, SlaEscalated};
use crm_proto::events::DomainEvent;
use kit::db::TenantTx;
use kit::events::decode_data;
use kit::inbox::EventHandler;
use kit::rpc::on_behalf;
use kit::service_tokens::ServiceTokens;
use uuid::Uuid;

use crate::grpc::SharedState;

pub struct EscalationTasks {
    pub state: SharedState,
    pub tokens: Arc<ServiceTokens>,
}

impl EventHandler for EscalationTasks {
    async fn handle(&self, _tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        if event.r#type != <SlaEscalated as DomainEvent>::TYPE {
            return Ok(());
        }
        let escalated: SlaEscalated = decode_data(event)?;
        if escalated.action != EscalationAction::CreateTask as i32 {
            return Ok(());
        }
        if escalated.requester_contact_id.is_empty() && escalated.account_id.is_empty() {
            tracing::info!(ticket = %escalated.ticket_id, "an escalation task has nobody to be about");
            return Ok(());
        }
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let token = self.tokens.for_tenant(tenant).await?;
        let now = self.state.clock.now();
        let request = customers::LogActivityRequest {
            activity: Some(customers::Activity {
                kind: customers::ActivityKind::Task as i32,
                subject: format!(
                    "{} (ticket #{})",
                    escalated.task_subject, escalated.ticket_number
                ),
                contact_id: escalated.requester_contact_id.clone(),
                account_id: escalated.account_id.clone(),
                task: Some(customers::TaskDetails {
                    due_at: Some(kit::time::to_timestamp(now)),
                    assignee_id: escalated.task_assignee_id.clone(),
                    priority: customers::Priority::High as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: format!("sla-escalation:{}", event.id),
        };
        ActivityServiceClient::new(self.state.customers.clone())
            .log_activity(on_behalf(&token, request))
            .await
            .map_err(|status| {
                anyhow::anyhow!("the customers service refused the task: {status:?}")
            })?;
        Ok(())
    }
}
