//! Automation rules at work (ADR 0024).
//!
//! Triggers: a durable consumer per domain stream (customers, sales,
//! marketing) hands every event to [`Triggers`], which finds the tenant's
//! active rules for its type, reads the payload as JSON through the
//! descriptors (any service's event, no code per type), tests the
//! conditions and records one run per action, unique per rule, event and
//! action: the inbox applies an event once, the unique key is the second
//! fence.
//!
//! Runs: [`Runner`] takes due runs from `rule_run_queue` one at a time
//! under `FOR UPDATE SKIP LOCKED` (several pods share it; an attempt runs
//! on one), acts as the service itself (a token from the gateway's
//! client-credentials grant), and records the outcome with the queue row
//! in one transaction. An attempt that may have acted before a crash is
//! repeated safely: sends and tasks carry the run id as their request id,
//! segment membership is a set. Failures the other side may get over
//! (unavailable, internal) are retried with doubling delays; refusals
//! fail the run at once, with the reason on it.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::marketing::v1::{
    ActionKind, CreateSendRequest, JourneyCompleted, JourneyEnrolled, RuleAction, Send,
};
use kit::auth::CallerContext;
use kit::db::{set_tenant, TenantTx};
use kit::inbox::EventHandler;
use kit::rpc::{on_behalf, Forwarded};
use kit::Error;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use uuid::Uuid;

use crate::domain::automation;
use crate::grpc::campaigns::upstream;
use crate::grpc::SharedState;
use crate::store::automations::{self as store, Attempt, DueRun, NewRun};
use crate::store::journeys;

/// Attempts before a run that keeps failing is given up.
const MAX_ATTEMPTS: i32 = 6;
/// Runs one scan step carries out at most.
const STEP: usize = 20;

fn descriptors() -> Option<&'static DescriptorPool> {
    static POOL: OnceLock<Option<DescriptorPool>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).ok())
        .as_ref()
}

/// A protobuf message of type `schema` as proto JSON with proto field
/// names.
pub fn proto_json(schema: &str, bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
    let pool = descriptors().ok_or_else(|| anyhow::anyhow!("the descriptors do not decode"))?;
    let message = pool
        .get_message_by_name(schema)
        .ok_or_else(|| anyhow::anyhow!("unknown message {schema:?}"))?;
    let data = DynamicMessage::decode(message, bytes)?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    Ok(data.serialize_with_options(serde_json::value::Serializer, &options)?)
}

/// Records the runs an event fires, and enrols in or ends journeys.
pub struct Triggers(pub kit::outbox::Outbox);

impl EventHandler for Triggers {
    async fn handle(&self, tx: &mut TenantTx, event: &Event) -> anyhow::Result<()> {
        let tenant = Uuid::parse_str(&event.tenant_id)?;
        let rules = store::triggered_by(tx, tenant, &event.r#type).await?;
        let enrolling = journeys::enrolling_on(tx, tenant, &event.r#type).await?;
        let goal = journeys::has_goal(tx, tenant, &event.r#type).await?;
        if rules.is_empty() && enrolling.is_empty() && !goal {
            return Ok(());
        }
        let data = proto_json(&event.data_schema, &event.data)?;
        if let Some(contact) = automation::contact_at(&data, "") {
            let caller = CallerContext::system(crate::config::SERVICE, tenant);
            if goal {
                for over in journeys::exit_on_goal(tx, tenant, contact, &event.r#type).await? {
                    let id = Uuid::parse_str(&over.id)?;
                    let event = JourneyCompleted {
                        enrolment: Some(over),
                    };
                    self.0.enqueue(tx, &caller, id, 2, &event).await?;
                }
            }
            for journey in enrolling {
                for enrolled in journeys::enrol(tx, tenant, journey, &[contact]).await? {
                    let id = Uuid::parse_str(&enrolled.id)?;
                    let event = JourneyEnrolled {
                        enrolment: Some(enrolled),
                    };
                    self.0.enqueue(tx, &caller, id, 1, &event).await?;
                }
            }
        }
        let occurred_at = event
            .occurred_at
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
            .unwrap_or_else(Utc::now);
        for rule in rules {
            if !automation::matches(&rule, &data) {
                continue;
            }
            let Some(contact) = automation::contact_at(&data, &rule.contact_path) else {
                continue;
            };
            let rule_id = Uuid::parse_str(&rule.id)?;
            for (index, action) in rule.actions.iter().enumerate() {
                let run = NewRun {
                    rule: rule_id,
                    event_id: &event.id,
                    event_type: &event.r#type,
                    occurred_at,
                    contact,
                    index: i32::try_from(index)?,
                    action,
                };
                store::insert_run(tx, tenant, &run).await?;
            }
        }
        Ok(())
    }
}

/// Carries out due runs.
pub struct Runner {
    state: SharedState,
    retry: Duration,
    interval: Duration,
}

impl Runner {
    pub fn new(state: SharedState, retry: Duration, interval: Duration) -> Self {
        Self {
            state,
            retry,
            interval,
        }
    }

    async fn attempt(&self, tenant: Uuid, run: &DueRun) -> Attempt {
        let outcome = async {
            let token = self.state.service_tokens.for_tenant(tenant).await?;
            act(&self.state, tenant, &token, run).await
        }
        .await;
        match outcome {
            Ok(()) => Attempt::Done,
            Err(error @ (Error::Unavailable(_) | Error::Internal(_)))
                if run.attempts + 1 < MAX_ATTEMPTS =>
            {
                let delay = self.retry * 2u32.saturating_pow(run.attempts.unsigned_abs());
                Attempt::RetryIn(error.to_string(), delay.min(Duration::from_secs(3600)))
            }
            Err(error) => Attempt::Failed(error.to_string()),
        }
    }
}

impl kit::scan::Scan for Runner {
    const NAME: &'static str = "automation runs";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        while handled < STEP {
            let mut tx = self.state.db.pool().begin().await?;
            let Some((tenant, id)) = store::lock_due(&mut tx).await? else {
                break;
            };
            set_tenant(&mut tx, tenant).await?;
            match store::pending_run(&mut tx, tenant, id).await? {
                None => store::unqueue(&mut tx, tenant, id).await?,
                Some(run) => {
                    let attempt = self.attempt(tenant, &run).await;
                    store::record_attempt(&mut tx, tenant, id, &attempt).await?;
                }
            }
            tx.commit().await?;
            handled += 1;
        }
        Ok(handled)
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

/// One action for the run's contact, as the service itself.
async fn act(
    state: &SharedState,
    tenant: Uuid,
    token: &Forwarded,
    run: &DueRun,
) -> kit::Result<()> {
    let a: &RuleAction = &run.action.0;
    let contact = run.contact_id.to_string();
    let request_id = format!("automation-run:{}", run.id);
    match ActionKind::try_from(a.kind).unwrap_or_default() {
        ActionKind::SendTemplate => {
            let caller = CallerContext::system(crate::config::SERVICE, tenant);
            let request = CreateSendRequest {
                send: Some(Send {
                    template_id: a.template_id.clone(),
                    sender_identity_id: a.sender_identity_id.clone(),
                    contact_ids: vec![contact],
                    ..Default::default()
                }),
                request_id,
            };
            crate::grpc::messages::create_send(state, caller, token.clone(), request).await?;
        }
        ActionKind::AddToSegment => {
            let mut segments = SegmentServiceClient::new(state.customers.clone());
            let request = customers::AddSegmentMembersRequest {
                segment_id: a.segment_id.clone(),
                contact_ids: vec![contact],
            };
            segments
                .add_segment_members(on_behalf(token, request))
                .await
                .map_err(refused)?;
        }
        ActionKind::RemoveFromSegment => {
            let mut segments = SegmentServiceClient::new(state.customers.clone());
            let request = customers::RemoveSegmentMembersRequest {
                segment_id: a.segment_id.clone(),
                contact_ids: vec![contact],
            };
            segments
                .remove_segment_members(on_behalf(token, request))
                .await
                .map_err(refused)?;
        }
        ActionKind::CreateTask => {
            let due = run.occurred_at + chrono::Duration::days(i64::from(a.task_due_in_days));
            let mut activities = ActivityServiceClient::new(state.customers.clone());
            let request = customers::LogActivityRequest {
                activity: Some(customers::Activity {
                    kind: customers::ActivityKind::Task as i32,
                    subject: a.task_subject.clone(),
                    contact_id: contact,
                    task: Some(customers::TaskDetails {
                        due_at: Some(kit::time::to_timestamp(due)),
                        assignee_id: a.task_assignee_id.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                request_id,
            };
            activities
                .log_activity(on_behalf(token, request))
                .await
                .map_err(refused)?;
        }
        ActionKind::Unspecified => {
            return Err(Error::FailedPrecondition("the action has no kind".into()))
        }
    }
    Ok(())
}

/// The customers service's answer as an error: NOT_FOUND (the contact or
/// segment is gone) is a refusal, not a reason to retry.
fn refused(status: tonic::Status) -> Error {
    match status.code() {
        tonic::Code::NotFound => Error::FailedPrecondition(format!(
            "the customers service found nothing: {}",
            status.message()
        )),
        _ => upstream(status),
    }
}
