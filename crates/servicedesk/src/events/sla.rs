//! SLA clocks follow their tickets: [`follow`] runs in the transaction of
//! every ticket change (created, changed, replied to) and moves the
//! ticket's clocks (matched policy, pauses, completions) and their alarms;
//! [`SlaScanner`] wakes the clocks whose alarm is due. Both hand the
//! stages reached to [`settle`], which publishes `sla.warning` /
//! `sla.breached` and runs the policy's escalations.
//!
//! Exactly once, with any number of pods: a clock changes only under its
//! ticket's row lock, and marks a stage in the same transaction that
//! publishes it (through the outbox); the scanner takes alarms with `SKIP
//! LOCKED` and skips tickets another transaction holds.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{
    EscalationAction, MessageKind, SlaBreached, SlaEscalated, SlaMetric, SlaPolicy, SlaStage,
    SlaWarning, Ticket, TicketPriority, TicketStatus,
};
use kit::auth::CallerContext;
use kit::db::set_tenant;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::calendar::Hours;
use crate::domain::sla::{self, SlaClock, METRICS};
use crate::grpc::{tickets::save_change, version_of, State};
use crate::store::{slas as store, tickets};

/// A stage a ticket's clock reached.
#[derive(Debug, Clone)]
pub struct Alert {
    pub ticket_id: Uuid,
    pub clock: SlaClock,
    pub stage: SlaStage,
}

/// Calendars read once per transaction.
#[derive(Default)]
pub struct HoursCache(HashMap<Option<Uuid>, Hours>);

impl HoursCache {
    pub async fn get(
        &mut self,
        tx: &mut PgConnection,
        tenant: Uuid,
        calendar: Option<Uuid>,
    ) -> sqlx::Result<&Hours> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry(calendar) {
            slot.insert(store::hours(tx, tenant, calendar).await?);
        }
        Ok(&self.0[&calendar])
    }
}

fn is_done(status: i32) -> bool {
    status == TicketStatus::Solved as i32 || status == TicketStatus::Closed as i32
}

/// Whether a change touches what policies match on.
fn policy_inputs_differ(a: &Ticket, b: &Ticket) -> bool {
    a.priority != b.priority
        || a.r#type != b.r#type
        || a.channel != b.channel
        || a.group_id != b.group_id
        || a.tags != b.tags
        || a.account_facts != b.account_facts
}

/// The first active policy of the tenant that matches `t`.
async fn matching_policy(
    tx: &mut PgConnection,
    tenant: Uuid,
    t: &Ticket,
) -> sqlx::Result<Option<SlaPolicy>> {
    let policies = store::list_policies(tx, tenant, true, None, 1_000).await?;
    Ok(policies.into_iter().find(|p| sla::matches(p, t)))
}

/// Moves the clocks of `after` (the ticket as just saved, locked) for a
/// change from `before` (`None`: just created; the same ticket: only time
/// passed) and an optional message; returns the stages reached.
pub async fn follow(
    tx: &mut PgConnection,
    tenant: Uuid,
    before: Option<&Ticket>,
    after: &Ticket,
    message: Option<MessageKind>,
    now: DateTime<Utc>,
) -> kit::Result<Vec<Alert>> {
    let id = kit::input::parse_id("ticket.id", &after.id)?;
    let mut clocks = match before {
        Some(_) => store::clocks(tx, tenant, id).await?,
        None => Vec::new(),
    };
    let had_clocks = !clocks.is_empty();
    let mut cache = HoursCache::default();
    let mut alerts = Vec::new();
    // Stages reached before this change are reached whatever it does.
    for clock in &mut clocks {
        let hours = cache.get(tx, tenant, clock.calendar_id).await?;
        for stage in clock.reach(hours, now) {
            alerts.push(Alert {
                ticket_id: id,
                clock: clock.clone(),
                stage,
            });
        }
    }

    let mut policy = None;
    if before.is_none_or(|b| policy_inputs_differ(b, after)) {
        policy = matching_policy(tx, tenant, after).await?;
        let mut kept = Vec::new();
        for metric in METRICS {
            match (clocks.iter().position(|c| c.metric == metric), &policy) {
                (Some(i), _) if clocks[i].is_done() => kept.push(clocks[i].clone()),
                (Some(i), Some(p)) => {
                    let mut clock = clocks[i].clone();
                    let running = clock.running_since.is_some();
                    // Time so far counts in the old hours, from now in the new.
                    let hours = cache.get(tx, tenant, clock.calendar_id).await?;
                    clock.pause(hours, now);
                    if clock.adopt(p) {
                        if running {
                            clock.resume(now);
                        }
                        kept.push(clock);
                    }
                }
                (None, Some(p)) => {
                    let starts = match metric {
                        SlaMetric::FirstResponse => after.first_responded_at.is_none(),
                        SlaMetric::Resolution => !is_done(after.status),
                        _ => false,
                    };
                    if starts {
                        kept.extend(SlaClock::start(p, metric, now));
                    }
                }
                _ => {}
            }
        }
        clocks = kept;
    }

    match message {
        Some(MessageKind::PublicReply) => {
            for clock in &mut clocks {
                if matches!(
                    clock.metric,
                    SlaMetric::FirstResponse | SlaMetric::NextResponse
                ) {
                    let hours = cache.get(tx, tenant, clock.calendar_id).await?;
                    clock.complete(hours, now);
                }
            }
        }
        // A customer who writes after an agent answered awaits the next answer.
        Some(MessageKind::CustomerMessage) if after.first_responded_at.is_some() => {
            if let Some(clock) = clocks
                .iter_mut()
                .find(|c| c.metric == SlaMetric::NextResponse)
            {
                if clock.is_done() {
                    clock.restart(now);
                }
            } else if let Some(policy_id) = clocks.first().map(|c| c.policy_id) {
                if policy.is_none() {
                    policy = store::find_policy(tx, tenant, policy_id, false).await?;
                }
                if let Some(p) = &policy {
                    clocks.extend(SlaClock::start(p, SlaMetric::NextResponse, now));
                }
            }
        }
        _ => {}
    }

    let reopened = before.is_some_and(|b| is_done(b.status)) && !is_done(after.status);
    for clock in &mut clocks {
        let hours = cache.get(tx, tenant, clock.calendar_id).await?;
        if is_done(after.status) {
            clock.complete(hours, now);
        } else if reopened && clock.metric == SlaMetric::Resolution {
            clock.reopen(now);
        } else if after.status == TicketStatus::PendingCustomer as i32 {
            clock.pause(hours, now);
        } else {
            clock.resume(now);
        }
    }

    if had_clocks || !clocks.is_empty() {
        let mut saved = Vec::with_capacity(clocks.len());
        for clock in clocks {
            let hours = cache.get(tx, tenant, clock.calendar_id).await?;
            let alarm = clock.next_alarm(hours);
            saved.push((clock, alarm));
        }
        store::save_clocks(tx, tenant, id, &saved).await?;
    }
    Ok(alerts)
}

/// A ticket's targets as of `now`.
pub async fn targets(
    tx: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    now: DateTime<Utc>,
) -> kit::Result<Vec<crm_proto::crm::servicedesk::v1::SlaTarget>> {
    let mut cache = HoursCache::default();
    let mut targets = Vec::new();
    for clock in store::clocks(tx, tenant, ticket).await? {
        let hours = cache.get(tx, tenant, clock.calendar_id).await?;
        targets.push(clock.to_proto(hours, now));
    }
    Ok(targets)
}

/// Publishes each stage reached and runs the matching escalations of an
/// open ticket (their changes may reach further stages, handled in turn).
pub async fn settle(
    state: &State,
    tx: &mut PgConnection,
    tenant: Uuid,
    alerts: Vec<Alert>,
    now: DateTime<Utc>,
) -> kit::Result<()> {
    let system = CallerContext::system(crate::config::SERVICE, tenant);
    let mut queue: VecDeque<Alert> = alerts.into();
    let mut cache = HoursCache::default();
    while let Some(alert) = queue.pop_front() {
        let Some(ticket) = tickets::find(
            tx,
            tenant,
            &kit::access::Scope::Tenant,
            alert.ticket_id,
            false,
        )
        .await?
        else {
            continue;
        };
        let hours = cache.get(tx, tenant, alert.clock.calendar_id).await?;
        let target = Some(alert.clock.to_proto(hours, now));
        let version = version_of(&ticket.audit);
        let (id, number) = (ticket.id.clone(), ticket.number);
        let (assignee, group) = (ticket.assignee_id.clone(), ticket.group_id.clone());
        match alert.stage {
            SlaStage::Warning => {
                let event = SlaWarning {
                    ticket_id: id,
                    ticket_number: number,
                    assignee_id: assignee,
                    group_id: group,
                    target,
                };
                state
                    .outbox
                    .enqueue(tx, &system, alert.ticket_id, version, &event)
                    .await?;
            }
            _ => {
                let event = SlaBreached {
                    ticket_id: id,
                    ticket_number: number,
                    assignee_id: assignee,
                    group_id: group,
                    target,
                };
                state
                    .outbox
                    .enqueue(tx, &system, alert.ticket_id, version, &event)
                    .await?;
            }
        }
        if is_done(ticket.status) {
            continue;
        }
        let Some(policy) = store::find_policy(tx, tenant, alert.clock.policy_id, false).await?
        else {
            continue;
        };
        let mut current = ticket;
        for escalation in policy.escalations.iter().filter(|e| {
            e.stage == alert.stage as i32
                && (e.metric == SlaMetric::Unspecified as i32
                    || e.metric == alert.clock.metric as i32)
        }) {
            let action = EscalationAction::try_from(escalation.action).unwrap_or_default();
            let mut after = current.clone();
            match action {
                EscalationAction::Reassign => {
                    if !escalation.assignee_id.is_empty() {
                        after.assignee_id = escalation.assignee_id.clone();
                    }
                    if !escalation.group_id.is_empty() {
                        after.group_id = escalation.group_id.clone();
                    }
                }
                EscalationAction::RaisePriority => {
                    after.priority = (after.priority + 1).min(TicketPriority::Urgent as i32);
                }
                _ => {}
            }
            if after != current {
                let saved = save_change(state, tx, &system, &current, &after).await?;
                queue.extend(follow(tx, tenant, Some(&current), &saved, None, now).await?);
                current = saved;
            }
            let mut event = SlaEscalated {
                ticket_id: current.id.clone(),
                ticket_number: current.number,
                metric: alert.clock.metric as i32,
                stage: alert.stage as i32,
                action: action as i32,
                notify_user_ids: escalation.notify_user_ids.clone(),
                ..Default::default()
            };
            if action == EscalationAction::CreateTask {
                event.task_subject = escalation.task_subject.trim().to_owned();
                event.task_assignee_id = if escalation.assignee_id.is_empty() {
                    current.assignee_id.clone()
                } else {
                    escalation.assignee_id.clone()
                };
                event.requester_contact_id = current.requester_contact_id.clone();
                event.account_id = current.account_id.clone();
            }
            state
                .outbox
                .enqueue(
                    tx,
                    &system,
                    alert.ticket_id,
                    version_of(&current.audit),
                    &event,
                )
                .await?;
        }
    }
    Ok(())
}

/// Wakes the clocks whose alarm is due.
pub struct SlaScanner {
    state: crate::grpc::SharedState,
    interval: Duration,
}

impl SlaScanner {
    pub fn new(state: crate::grpc::SharedState, interval: Duration) -> Self {
        Self { state, interval }
    }
}

impl kit::scan::Scan for SlaScanner {
    const NAME: &'static str = "SLA alarms";

    async fn try_once(&self) -> anyhow::Result<usize> {
        let now = self.state.clock.now();
        let mut tx = self.state.db.pool().begin().await?;
        let mut due = store::lock_due_alarms(&mut tx, now, kit::scan::BATCH as i64).await?;
        let taken = due.len();
        due.sort();
        due.dedup();
        for (tenant, ticket) in due {
            set_tenant(&mut tx, tenant).await?;
            // A ticket being changed is left to the next pass.
            let Some(t) = tickets::lock_if_free(&mut tx, tenant, ticket).await? else {
                continue;
            };
            let alerts = follow(&mut tx, tenant, Some(&t), &t, None, now).await?;
            settle(&self.state, &mut tx, tenant, alerts, now).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    fn interval(&self) -> Duration {
        self.interval
    }
}
