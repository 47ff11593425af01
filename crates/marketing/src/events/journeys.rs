//! Journeys at work (ADR 0025): enrolments move from step to step.
//!
//! Each active enrolment has a row in `journey_queue` due when it moves on
//! (at once, at the end of a wait, or at a retry). [`Stepper`] takes one
//! due row at a time under `FOR UPDATE SKIP LOCKED` (timers fire once
//! across pods and survive restarts: they are rows), locks the enrolment,
//! and walks it forward until a wait or the end, recording each step in
//! its history in the same transaction. A SEND step is an ordinary send to
//! the contact, made as the service (the gateway's grant) with the request
//! id `journey:<enrolment>:<step>`, so a step repeated after a crash makes
//! no second send; a branch reads opens and clicks of that send, or a
//! field of the contact from customers. Unavailable services are retried
//! with doubling delays; refusals fail the enrolment with the reason.

use std::time::Duration;

use chrono::Utc;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::marketing::v1::{
    BranchCondition, CreateSendRequest, EnrolmentStatus, Journey, JourneyCompleted, JourneyStatus,
    JourneyStep, Send, StepKind,
};
use kit::auth::CallerContext;
use kit::db::set_tenant;
use kit::rpc::on_behalf;
use kit::Error;
use prost::Message as _;
use uuid::Uuid;

use crate::domain::{automation, journey};
use crate::grpc::SharedState;
use crate::store::journeys::{self as store, Current, Leave, Visit};

/// Attempts before a step that keeps failing fails the enrolment.
const MAX_ATTEMPTS: i32 = 6;
/// Enrolments one scan step moves at most.
const STEP: usize = 50;

pub struct Stepper {
    state: SharedState,
    retry: kit::retry::Backoff,
    interval: Duration,
}

impl Stepper {
    pub fn new(state: SharedState, retry: Duration, interval: Duration) -> Self {
        Self {
            state,
            retry: kit::retry::Backoff::doubling(retry, MAX_ATTEMPTS),
            interval,
        }
    }

    /// Walks the enrolment forward from its current step.
    async fn advance(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        j: &Journey,
        e: &mut Current,
    ) -> Leave {
        // A new enrolment arrives at the first step; otherwise the current
        // step is due (a wait is over, or a step is retried).
        let (mut index, mut arrived) = if e.step.is_empty() {
            (0, true)
        } else {
            match journey::position(j, &e.step) {
                Some(i) => (i, false),
                None => {
                    return Leave::Over(
                        EnrolmentStatus::Failed,
                        format!("the journey has no step {:?}", e.step),
                    )
                }
            }
        };
        loop {
            let step = &j.steps[index];
            let next = match StepKind::try_from(step.kind).unwrap_or_default() {
                StepKind::Wait if arrived => {
                    let at = match &step.wait_until {
                        Some(until) => kit::time::from_timestamp("wait_until", until)
                            .unwrap_or_else(|_| Utc::now()),
                        None => Utc::now() + chrono::Duration::seconds(step.wait_seconds),
                    };
                    e.history.push(visit(step, "waiting", None));
                    return Leave::At {
                        step: step.key.clone(),
                        at,
                        attempts: 0,
                        error: String::new(),
                    };
                }
                StepKind::Wait => {
                    e.history.push(visit(step, "waited", None));
                    journey::after(j, index)
                }
                StepKind::Send => match self.send(tenant, e, step).await {
                    Ok(send) => {
                        e.history.push(visit(step, "sent", Some(send)));
                        journey::after(j, index)
                    }
                    Err(error) => return self.failed(e, step, error),
                },
                StepKind::Branch => match self.holds(tx, tenant, e, step).await {
                    Ok(holds) => {
                        e.history
                            .push(visit(step, if holds { "then" } else { "else" }, None));
                        journey::branch(j, step, holds)
                    }
                    Err(error) => return self.failed(e, step, error),
                },
                StepKind::Unspecified => None,
            };
            e.attempts = 0;
            match next {
                Some(i) => {
                    index = i;
                    arrived = true;
                }
                None => return Leave::Over(EnrolmentStatus::Completed, String::new()),
            }
        }
    }

    /// A step that failed: retried later when the other side may get
    /// over it, else the enrolment fails.
    fn failed(&self, e: &Current, step: &JourneyStep, error: Error) -> Leave {
        match self.retry.after(e.attempts + 1) {
            Some(delay) if error.is_transient() => {
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                Leave::At {
                    step: step.key.clone(),
                    at: Utc::now() + delay,
                    attempts: e.attempts + 1,
                    error: error.to_string(),
                }
            }
            _ => Leave::Over(
                EnrolmentStatus::Failed,
                format!("step {}: {error}", step.key),
            ),
        }
    }

    async fn send(&self, tenant: Uuid, e: &Current, step: &JourneyStep) -> kit::Result<Uuid> {
        let token = self.state.service_tokens.for_tenant(tenant).await?;
        let caller = CallerContext::system(crate::config::SERVICE, tenant);
        let request = CreateSendRequest {
            send: Some(Send {
                template_id: step.template_id.clone(),
                sender_identity_id: step.sender_identity_id.clone(),
                contact_ids: vec![e.contact_id.to_string()],
                ..Default::default()
            }),
            request_id: format!("journey:{}:{}", e.id, step.key),
        };
        let made = crate::grpc::messages::create_send(&self.state, caller, token, request).await?;
        let id = made.send.map(|s| s.id).unwrap_or_default();
        Uuid::parse_str(&id).map_err(|_| Error::Internal(anyhow::anyhow!("a send without an id")))
    }

    async fn holds(
        &self,
        tx: &mut sqlx::PgConnection,
        tenant: Uuid,
        e: &Current,
        step: &JourneyStep,
    ) -> kit::Result<bool> {
        match BranchCondition::try_from(step.condition).unwrap_or_default() {
            condition @ (BranchCondition::Opened | BranchCondition::Clicked) => {
                let send = e
                    .history
                    .iter()
                    .rev()
                    .find(|v| v.step == step.message_step)
                    .and_then(|v| v.send_id);
                Ok(match send {
                    Some(send) => {
                        let clicked = condition == BranchCondition::Clicked;
                        store::engaged(tx, tenant, send, e.contact_id, clicked).await?
                    }
                    None => false,
                })
            }
            BranchCondition::FieldEquals => {
                let token = self.state.service_tokens.for_tenant(tenant).await?;
                let mut contacts = ContactServiceClient::new(self.state.customers.clone());
                let request = customers::GetContactRequest {
                    id: e.contact_id.to_string(),
                };
                let contact = match contacts.get_contact(on_behalf(&token, request)).await {
                    Ok(found) => found.into_inner().contact.unwrap_or_default(),
                    Err(status) if status.code() == tonic::Code::NotFound => {
                        return Err(Error::FailedPrecondition("the contact is gone".into()))
                    }
                    Err(status) => return Err(crate::grpc::campaigns::upstream(status)),
                };
                let data = super::automation::proto_json(
                    "crm.customers.v1.Contact",
                    &contact.encode_to_vec(),
                )
                .map_err(Error::Internal)?;
                let found = automation::lookup(&data, &step.field).map(automation::as_text);
                Ok(found.unwrap_or_default() == step.value)
            }
            BranchCondition::Unspecified => Ok(false),
        }
    }
}

fn visit(step: &JourneyStep, outcome: &str, send_id: Option<Uuid>) -> Visit {
    Visit {
        step: step.key.clone(),
        at: Utc::now(),
        outcome: outcome.into(),
        send_id,
    }
}

impl kit::scan::Scan for Stepper {
    const NAME: &'static str = "journey steps";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let mut handled = 0;
        while handled < STEP {
            let mut tx = self.state.db.pool().begin().await?;
            let Some((tenant, id)) = store::lock_due(&mut tx).await? else {
                break;
            };
            set_tenant(&mut tx, tenant).await?;
            if let Some(mut e) = store::current(&mut tx, tenant, id).await? {
                let how = match store::find(&mut tx, tenant, e.journey_id).await? {
                    None => Leave::Over(EnrolmentStatus::Failed, "the journey is gone".into()),
                    Some(j) if j.status == JourneyStatus::Paused as i32 => Leave::Parked,
                    Some(j) => self.advance(&mut tx, tenant, &j, &mut e).await,
                };
                if let Some(over) = store::leave(&mut tx, tenant, &e, how).await? {
                    let caller = CallerContext::system(crate::config::SERVICE, tenant);
                    let event = JourneyCompleted {
                        enrolment: Some(over),
                    };
                    self.state
                        .outbox
                        .enqueue(&mut tx, &caller, e.id, 2, &event)
                        .await?;
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
