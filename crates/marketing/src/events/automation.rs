//! Automation rules at work (ADR 0024).
//!
//! Triggers: a durable consumer per domain stream (customers, sales,
//! marketing, reporting) hands every event to [`Triggers`], which finds the tenant's
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

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::common::v1::Event;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::activity_service_client::ActivityServiceClient;
use crm_proto::crm::customers::v1::segment_service_client::SegmentServiceClient;
use crm_proto::crm::marketing::v1::{
    ActionKind, AutomationRule, CreateSendRequest, DateTrigger, JourneyCompleted, JourneyEnrolled,
    RuleAction, RuleStatus, Send,
};
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::servicedesk::v1 as servicedesk;
use crm_proto::crm::servicedesk::v1::ticket_service_client::TicketServiceClient;
use kit::auth::CallerContext;
use kit::db::{set_tenant, TenantTx};
use kit::inbox::EventHandler;
use kit::retry::Backoff;
use kit::rpc::{on_behalf, Forwarded};
use kit::Error;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use uuid::Uuid;

use crate::domain::automation::{self, Subject};
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
        let mut body = None;
        for rule in rules {
            if !automation::matches(&rule, &data) {
                continue;
            }
            let contact = automation::contact_at(&data, &rule.contact_path);
            let lead = automation::lead_at(&data, &rule.lead_path);
            let rule_id = Uuid::parse_str(&rule.id)?;
            for (index, action) in rule.actions.iter().enumerate() {
                let kind = ActionKind::try_from(action.kind).unwrap_or_default();
                let payload = match automation::subject_of(kind) {
                    Subject::Contact if contact.is_none() => continue,
                    Subject::Lead if lead.is_none() => continue,
                    Subject::Event => Some(
                        &*body.get_or_insert_with(|| kit::events::to_json(event, data.clone())),
                    ),
                    _ => None,
                };
                let run = NewRun {
                    rule: rule_id,
                    event_id: &event.id,
                    event_type: &event.r#type,
                    occurred_at,
                    contact,
                    lead,
                    index: i32::try_from(index)?,
                    action,
                    payload,
                };
                store::insert_run(tx, tenant, &run).await?;
            }
        }
        Ok(())
    }
}

/// Fires the date rules whose day has come (ADR 0024): one due rule at a
/// time under `FOR UPDATE SKIP LOCKED` (a day fires on one pod), a run per
/// action for each contact whose date comes round, keyed by the day and
/// the contact so a repeated firing makes nothing twice.
pub struct DateRules {
    db: kit::db::Database,
    interval: Duration,
}

impl DateRules {
    pub fn new(db: kit::db::Database, interval: Duration) -> Self {
        Self { db, interval }
    }
}

impl kit::scan::Scan for DateRules {
    const NAME: &'static str = "date rules";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        while handled < STEP {
            let mut tx = self.db.pool().begin().await?;
            let Some((tenant, rule_id, day)) = store::lock_due_date(&mut tx).await? else {
                break;
            };
            set_tenant(&mut tx, tenant).await?;
            let rule = store::find(&mut tx, tenant, rule_id).await?;
            let trigger = rule.as_ref().and_then(|r| r.date_trigger.clone());
            if let (Some(rule), Some(trigger)) = (&rule, &trigger) {
                // A paused rule lets its days go by.
                if rule.status == RuleStatus::Active as i32 {
                    fire_on(&mut tx, tenant, rule, trigger, day).await?;
                }
            }
            store::advance_schedule(&mut tx, tenant, rule_id, trigger.map(|t| t.hour)).await?;
            tx.commit().await?;
            handled += 1;
        }
        Ok(handled)
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}

/// Records the runs of `rule` for `day`: each contact whose date falls
/// `days_before` days later.
async fn fire_on(
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    rule: &AutomationRule,
    trigger: &DateTrigger,
    day: NaiveDate,
) -> anyhow::Result<()> {
    let rule_id = Uuid::parse_str(&rule.id)?;
    let target = day + chrono::Duration::days(i64::from(trigger.days_before));
    let event_type = format!("date:{}", trigger.field);
    let occurred_at = day
        .and_hms_opt(u32::try_from(trigger.hour)?, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(Utc::now);
    for (contact, date) in store::contacts_on(tx, tenant, &trigger.field, target).await? {
        let event_id = format!("date:{day}:{contact}");
        let body = serde_json::json!({
            "id": event_id,
            "type": event_type,
            "tenant_id": tenant.to_string(),
            "subject": contact.to_string(),
            "occurred_at": occurred_at.to_rfc3339(),
            "data": {"contact_id": contact.to_string(), "field": trigger.field, "date": date.to_string()},
        });
        for (index, action) in rule.actions.iter().enumerate() {
            let kind = ActionKind::try_from(action.kind).unwrap_or_default();
            let run = NewRun {
                rule: rule_id,
                event_id: &event_id,
                event_type: &event_type,
                occurred_at,
                contact: Some(contact),
                lead: None,
                index: i32::try_from(index)?,
                action,
                payload: (automation::subject_of(kind) == Subject::Event).then_some(&body),
            };
            store::insert_run(tx, tenant, &run).await?;
        }
    }
    Ok(())
}

/// Carries out due runs.
pub struct Runner {
    state: SharedState,
    retry: Backoff,
    interval: Duration,
}

impl Runner {
    pub fn new(state: SharedState, retry: Duration, interval: Duration) -> Self {
        Self {
            state,
            retry: Backoff::doubling(retry, MAX_ATTEMPTS),
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
            Err(error) => match self.retry.after(run.attempts + 1) {
                Some(delay) if error.is_transient() => Attempt::RetryIn(error.to_string(), delay),
                _ => Attempt::Failed(error.to_string()),
            },
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
    let request_id = format!("automation-run:{}", run.id);
    let kind = ActionKind::try_from(a.kind).unwrap_or_default();
    let missing = |what: &str| Error::FailedPrecondition(format!("the run has no {what}"));
    let contact = match (automation::subject_of(kind), run.contact_id) {
        (Subject::Contact, None) => return Err(missing("contact")),
        (_, contact) => contact.map(|c| c.to_string()).unwrap_or_default(),
    };
    let lead = match (automation::subject_of(kind), run.lead_id) {
        (Subject::Lead, None) => return Err(missing("lead")),
        (_, lead) => lead.map(|l| l.to_string()).unwrap_or_default(),
    };
    match kind {
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
                .map_err(|s| refused("customers", s))?;
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
                .map_err(|s| refused("customers", s))?;
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
                .map_err(|s| refused("customers", s))?;
        }
        ActionKind::AssignLead => {
            let request = sales::AssignLeadsRequest {
                lead_ids: vec![lead],
                user_id: a.lead_owner_id.clone(),
            };
            LeadServiceClient::new(state.sales.clone())
                .assign_leads(on_behalf(token, request))
                .await
                .map_err(|s| refused("sales", s))?;
        }
        ActionKind::RecordLeadEngagement => {
            let request = sales::RecordEngagementRequest {
                lead_id: lead,
                engagement: a.engagement.clone(),
                occurred_at: Some(kit::time::to_timestamp(run.occurred_at)),
                request_id,
            };
            LeadServiceClient::new(state.sales.clone())
                .record_engagement(on_behalf(token, request))
                .await
                .map_err(|s| refused("sales", s))?;
        }
        ActionKind::CallWebhook => {
            let body = run
                .payload
                .as_ref()
                .ok_or_else(|| missing("event to post"))?;
            let event_id = body.0["id"].as_str().unwrap_or_default();
            let body = serde_json::json!({"rule_id": run.rule_id.to_string(), "run_id": run.id.to_string(), "event": body.0});
            state
                .webhooks
                .call(&a.webhook_url, &a.webhook_secret, event_id, &body)
                .await?;
        }
        ActionKind::CreateTicket => {
            let request = servicedesk::CreateTicketRequest {
                ticket: Some(servicedesk::Ticket {
                    subject: a.ticket_subject.clone(),
                    description: format!(
                        "Opened by automation rule {} on {}.",
                        run.rule_id, run.event_type
                    ),
                    priority: a.ticket_priority,
                    requester_contact_id: contact,
                    group_id: a.ticket_group_id.clone(),
                    ..Default::default()
                }),
                request_id,
            };
            TicketServiceClient::new(state.servicedesk.clone())
                .create_ticket(on_behalf(token, request))
                .await
                .map_err(|s| refused("service desk", s))?;
        }
        ActionKind::Unspecified => {
            return Err(Error::FailedPrecondition("the action has no kind".into()))
        }
    }
    Ok(())
}

/// Another service's answer as an error: a refusal (NOT_FOUND: the
/// contact, lead or segment is gone; a bad argument; no right) fails the
/// run; anything else is worth a retry.
fn refused(service: &str, status: tonic::Status) -> Error {
    use tonic::Code::*;
    match status.code() {
        NotFound => Error::FailedPrecondition(format!(
            "the {service} service found nothing: {}",
            status.message()
        )),
        InvalidArgument | FailedPrecondition | PermissionDenied | AlreadyExists | OutOfRange => {
            Error::FailedPrecondition(format!(
                "the {service} service refused: {}",
                status.message()
            ))
        }
        _ => Error::Unavailable(format!(
            "the {service} service did not answer ({})",
            status.message()
        )),
    }
}
