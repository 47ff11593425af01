//! SLA policies and clocks, without I/O. A policy is matched against a
//! ticket; each of its targets becomes a clock on the ticket that counts
//! business seconds while it runs, stops while the ticket waits for the
//! customer, and completes when the awaited thing happens. A clock reports
//! each stage it reaches (warning, breach) exactly once: [`SlaClock::reach`]
//! marks what it reports.

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{
    AccountFacts, EscalationAction, SlaClockState, SlaMetric, SlaPolicy, SlaStage, SlaTarget,
    Ticket, TicketChannel, TicketPriority, TicketType,
};
use kit::error::Violations;
use kit::time::to_optional_timestamp;
use uuid::Uuid;

use super::calendar::Hours;
use super::{optional_id, text};

pub const MAX_NAME: usize = 200;
/// A year of minutes: a target beyond it is a typo.
pub const MAX_TARGET_MINUTES: i32 = 525_600;
pub const MAX_ESCALATIONS: usize = 20;
pub const MAX_NOTIFY: usize = 20;
pub const DEFAULT_WARNING_PERCENT: i32 = 80;

pub const METRICS: [SlaMetric; 3] = [
    SlaMetric::FirstResponse,
    SlaMetric::NextResponse,
    SlaMetric::Resolution,
];

/// Trims, defaults and checks a policy, reporting under `policy.`.
pub fn normalize(p: &mut SlaPolicy, v: &mut Violations) {
    v.check(text("policy.name", &mut p.name, MAX_NAME));
    if p.name.is_empty() {
        v.add("policy.name", "is required");
    }
    let known = |field: &str, values: &[i32], ok: &dyn Fn(i32) -> bool, v: &mut Violations| {
        for (i, value) in values.iter().enumerate() {
            if *value == 0 || !ok(*value) {
                v.add(format!("{field}[{i}]"), "is not a known value");
            }
        }
    };
    known(
        "policy.priorities",
        &p.priorities,
        &|x| TicketPriority::try_from(x).is_ok(),
        v,
    );
    known(
        "policy.types",
        &p.types,
        &|x| TicketType::try_from(x).is_ok(),
        v,
    );
    known(
        "policy.channels",
        &p.channels,
        &|x| TicketChannel::try_from(x).is_ok(),
        v,
    );
    for (i, id) in p.group_ids.iter().enumerate() {
        v.check(kit::input::required_id(
            &format!("policy.group_ids[{i}]"),
            id,
        ));
    }
    v.check(kit::tags::normalize("policy.tags", &mut p.tags));
    v.check(kit::tags::normalize(
        "policy.account_tags",
        &mut p.account_tags,
    ));
    v.check(kit::input::text(
        "policy.account_field",
        &mut p.account_field,
        100,
    ));
    if p.account_field_values.len() > MAX_ACCOUNT_FIELD_VALUES {
        v.add(
            "policy.account_field_values",
            format!("at most {MAX_ACCOUNT_FIELD_VALUES} values"),
        );
    }
    for (i, value) in p.account_field_values.iter_mut().enumerate() {
        v.check(kit::input::text(
            &format!("policy.account_field_values[{i}]"),
            value,
            200,
        ));
    }
    p.account_field_values.retain(|value| !value.is_empty());
    match (
        p.account_field.is_empty(),
        p.account_field_values.is_empty(),
    ) {
        (false, true) => v.add(
            "policy.account_field_values",
            "name the values the account field must hold",
        ),
        (true, false) => v.add(
            "policy.account_field",
            "name the account field the values are of",
        ),
        _ => {}
    }
    v.check(optional_id("policy.calendar_id", &p.calendar_id));
    let targets = [
        ("policy.first_response_minutes", p.first_response_minutes),
        ("policy.next_response_minutes", p.next_response_minutes),
        ("policy.resolution_minutes", p.resolution_minutes),
    ];
    for (field, minutes) in targets {
        if !(0..=MAX_TARGET_MINUTES).contains(&minutes) {
            v.add(field, format!("must be 0-{MAX_TARGET_MINUTES} minutes"));
        }
    }
    if targets.iter().all(|(_, minutes)| *minutes == 0) {
        v.add(
            "policy.resolution_minutes",
            "a policy sets at least one target",
        );
    }
    if p.warning_percent == 0 {
        p.warning_percent = DEFAULT_WARNING_PERCENT;
    }
    if !(1..=99).contains(&p.warning_percent) {
        v.add("policy.warning_percent", "must be 1-99");
    }
    if p.escalations.len() > MAX_ESCALATIONS {
        v.add("policy.escalations", format!("at most {MAX_ESCALATIONS}"));
    }
    for (i, e) in p.escalations.iter().enumerate() {
        let field = |name: &str| format!("policy.escalations[{i}].{name}");
        if !matches!(
            SlaStage::try_from(e.stage),
            Ok(SlaStage::Warning | SlaStage::Breach)
        ) {
            v.add(
                field("stage"),
                "must be SLA_STAGE_WARNING or SLA_STAGE_BREACH",
            );
        }
        if SlaMetric::try_from(e.metric).is_err() {
            v.add(field("metric"), "is not a known metric");
        }
        v.check(optional_id(&field("assignee_id"), &e.assignee_id));
        v.check(optional_id(&field("group_id"), &e.group_id));
        match EscalationAction::try_from(e.action) {
            Ok(EscalationAction::Reassign) => {
                if e.assignee_id.is_empty() && e.group_id.is_empty() {
                    v.add(
                        field("assignee_id"),
                        "reassigning needs an assignee or a group",
                    );
                }
            }
            Ok(EscalationAction::RaisePriority) => {}
            Ok(EscalationAction::CreateTask) => {
                let subject = e.task_subject.trim().to_owned();
                if subject.is_empty()
                    || subject.chars().count() > 200
                    || subject.chars().any(char::is_control)
                {
                    v.add(
                        field("task_subject"),
                        "a task needs a subject of 1-200 characters",
                    );
                }
            }
            Ok(EscalationAction::Notify) => {
                if e.notify_user_ids.is_empty() || e.notify_user_ids.len() > MAX_NOTIFY {
                    v.add(
                        field("notify_user_ids"),
                        format!("names 1-{MAX_NOTIFY} users"),
                    );
                }
                for (j, id) in e.notify_user_ids.iter().enumerate() {
                    v.check(kit::input::required_id(
                        &field(&format!("notify_user_ids[{j}]")),
                        id,
                    ));
                }
            }
            _ => v.add(field("action"), "is not a known escalation action"),
        }
    }
}

/// Whether every condition of `p` holds for `t`.
pub fn matches(p: &SlaPolicy, t: &Ticket) -> bool {
    (p.priorities.is_empty() || p.priorities.contains(&t.priority))
        && (p.types.is_empty() || p.types.contains(&t.r#type))
        && (p.channels.is_empty() || p.channels.contains(&t.channel))
        && (p.group_ids.is_empty() || p.group_ids.contains(&t.group_id))
        && (p.tags.is_empty() || p.tags.iter().any(|tag| t.tags.contains(tag)))
        && matches_account(p, t.account_facts.as_ref())
}

/// Values one policy's account field may hold.
const MAX_ACCOUNT_FIELD_VALUES: usize = 50;

/// What policies may match on of an account: its tags and its custom
/// fields as text (strings, numbers, true/false).
pub fn account_facts(account: &crm_proto::crm::customers::v1::Account) -> AccountFacts {
    use prost_types::value::Kind;
    let fields = account
        .custom_fields
        .iter()
        .filter_map(|(name, value)| {
            let text = match value.kind.as_ref()? {
                Kind::StringValue(s) => s.clone(),
                Kind::NumberValue(n) => n.to_string(),
                Kind::BoolValue(b) => b.to_string(),
                _ => return None,
            };
            Some((name.clone(), text))
        })
        .collect();
    AccountFacts {
        tags: account.tags.clone(),
        fields,
    }
}

/// The account conditions: any of the tags, and the field's value among
/// the values (a ticket without an account matches neither).
fn matches_account(p: &SlaPolicy, facts: Option<&AccountFacts>) -> bool {
    let empty = AccountFacts::default();
    let facts = facts.unwrap_or(&empty);
    (p.account_tags.is_empty() || p.account_tags.iter().any(|tag| facts.tags.contains(tag)))
        && (p.account_field.is_empty()
            || facts.fields.get(&p.account_field).is_some_and(|value| {
                p.account_field_values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(value))
            }))
}

/// A policy's target for a metric, in seconds.
pub fn target_seconds(p: &SlaPolicy, metric: SlaMetric) -> Option<i64> {
    let minutes = match metric {
        SlaMetric::FirstResponse => p.first_response_minutes,
        SlaMetric::NextResponse => p.next_response_minutes,
        SlaMetric::Resolution => p.resolution_minutes,
        SlaMetric::Unspecified => 0,
    };
    (minutes > 0).then(|| i64::from(minutes) * 60)
}

/// One target of a ticket and how much of it has been used.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaClock {
    pub metric: SlaMetric,
    pub policy_id: Uuid,
    pub calendar_id: Option<Uuid>,
    pub target: i64,
    pub warn_after: i64,
    /// Business seconds used before `running_since`.
    pub elapsed: i64,
    /// Set while the clock runs.
    pub running_since: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// A clock of `policy`'s target for `metric`, running from `now`.
    pub fn start(policy: &SlaPolicy, metric: SlaMetric, now: DateTime<Utc>) -> Option<Self> {
        let mut clock = SlaClock {
            metric,
            policy_id: Uuid::nil(),
            calendar_id: None,
            target: 0,
            warn_after: 0,
            elapsed: 0,
            running_since: Some(now),
            warned_at: None,
            breached_at: None,
            completed_at: None,
        };
        clock.adopt(policy).then_some(clock)
    }

    /// Takes `policy`'s target (kept: the time used so far and the stages
    /// already reported); false if the policy has none for this metric.
    pub fn adopt(&mut self, policy: &SlaPolicy) -> bool {
        let Some(target) = target_seconds(policy, self.metric) else {
            return false;
        };
        self.policy_id = Uuid::parse_str(&policy.id).unwrap_or_default();
        self.calendar_id = Uuid::parse_str(&policy.calendar_id).ok();
        self.target = target;
        self.warn_after = target * i64::from(policy.warning_percent) / 100;
        true
    }

    pub fn is_done(&self) -> bool {
        self.completed_at.is_some()
    }

    /// Business seconds used by `now`.
    pub fn used(&self, hours: &Hours, now: DateTime<Utc>) -> i64 {
        self.elapsed
            + self
                .running_since
                .map_or(0, |since| hours.seconds_between(since, now))
    }

    /// When `threshold` business seconds are used if the clock keeps
    /// running; `None` while stopped (or never, on a calendar without time).
    fn reaches(&self, hours: &Hours, threshold: i64) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        hours.add(since, threshold - self.elapsed)
    }

    pub fn due_at(&self, hours: &Hours) -> Option<DateTime<Utc>> {
        self.reaches(hours, self.target)
    }

    /// The stages reached by `now` and not reported yet, marked as
    /// reported at the instant each was reached.
    pub fn reach(&mut self, hours: &Hours, now: DateTime<Utc>) -> Vec<SlaStage> {
        if self.is_done() {
            return Vec::new();
        }
        let used = self.used(hours, now);
        let mut reached = Vec::new();
        let at =
            |clock: &Self, threshold| clock.reaches(hours, threshold).map_or(now, |t| t.min(now));
        if self.warned_at.is_none() && used >= self.warn_after {
            self.warned_at = Some(at(self, self.warn_after));
            reached.push(SlaStage::Warning);
        }
        if self.breached_at.is_none() && used >= self.target {
            self.breached_at = Some(at(self, self.target));
            reached.push(SlaStage::Breach);
        }
        reached
    }

    pub fn pause(&mut self, hours: &Hours, now: DateTime<Utc>) {
        if let Some(since) = self.running_since.take() {
            self.elapsed += hours.seconds_between(since, now);
        }
    }

    pub fn resume(&mut self, now: DateTime<Utc>) {
        if !self.is_done() && self.running_since.is_none() {
            self.running_since = Some(now);
        }
    }

    pub fn complete(&mut self, hours: &Hours, now: DateTime<Utc>) {
        if !self.is_done() {
            self.pause(hours, now);
            self.completed_at = Some(now);
        }
    }

    /// Runs again after completion (a reopened ticket's resolution), with
    /// the time and stages it had.
    pub fn reopen(&mut self, now: DateTime<Utc>) {
        self.completed_at = None;
        self.resume(now);
    }

    /// Starts a new round (a next response awaited again).
    pub fn restart(&mut self, now: DateTime<Utc>) {
        self.elapsed = 0;
        self.warned_at = None;
        self.breached_at = None;
        self.completed_at = None;
        self.running_since = Some(now);
    }

    /// When the scanner should look at this clock next.
    pub fn next_alarm(&self, hours: &Hours) -> Option<DateTime<Utc>> {
        if self.is_done() {
            None
        } else if self.warned_at.is_none() {
            self.reaches(hours, self.warn_after)
        } else if self.breached_at.is_none() {
            self.reaches(hours, self.target)
        } else {
            None
        }
    }

    pub fn to_proto(&self, hours: &Hours, now: DateTime<Utc>) -> SlaTarget {
        let state = if self.is_done() {
            SlaClockState::Completed
        } else if self.running_since.is_some() {
            SlaClockState::Running
        } else {
            SlaClockState::Paused
        };
        SlaTarget {
            metric: self.metric as i32,
            policy_id: self.policy_id.to_string(),
            target_minutes: (self.target / 60) as i32,
            state: state as i32,
            due_at: to_optional_timestamp(self.due_at(hours)),
            business_seconds_remaining: self.target - self.used(hours, now),
            breached: self.breached_at.is_some(),
            warned_at: to_optional_timestamp(self.warned_at),
            breached_at: to_optional_timestamp(self.breached_at),
            completed_at: to_optional_timestamp(self.completed_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn policy() -> SlaPolicy {
        SlaPolicy {
            id: Uuid::now_v7().to_string(),
            name: "Urgent".into(),
            priorities: vec![TicketPriority::Urgent as i32],
            first_response_minutes: 60,
            resolution_minutes: 480,
            warning_percent: 75,
            ..Default::default()
        }
    }

    #[test]
    fn a_clock_warns_and_breaches_once_and_pauses() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut clock = SlaClock::start(&policy(), SlaMetric::FirstResponse, now).unwrap();
        let hours = Hours::Always;
        assert_eq!(clock.next_alarm(&hours), Some(now + Duration::minutes(45)));
        assert!(clock.reach(&hours, now + Duration::minutes(44)).is_empty());
        clock.pause(&hours, now + Duration::minutes(30));
        // Paused: an hour later nothing more is used.
        assert!(clock.reach(&hours, now + Duration::minutes(90)).is_empty());
        assert_eq!(clock.next_alarm(&hours), None);
        clock.resume(now + Duration::minutes(90));
        let late = now + Duration::minutes(200);
        assert_eq!(
            clock.reach(&hours, late),
            vec![SlaStage::Warning, SlaStage::Breach]
        );
        // Marked at the instants they were reached, not when noticed.
        assert_eq!(clock.warned_at, Some(now + Duration::minutes(105)));
        assert_eq!(clock.breached_at, Some(now + Duration::minutes(120)));
        assert!(clock.reach(&hours, late).is_empty());
        assert_eq!(
            clock.to_proto(&hours, late).business_seconds_remaining,
            -80 * 60
        );
    }

    #[test]
    fn policies_match_on_every_condition_they_set() {
        let p = policy();
        let urgent = Ticket {
            priority: TicketPriority::Urgent as i32,
            ..Default::default()
        };
        assert!(matches(&p, &urgent));
        assert!(!matches(&p, &Ticket::default()));
        let tagged = SlaPolicy {
            tags: vec!["vip".into()],
            ..p
        };
        assert!(!matches(&tagged, &urgent));
        assert!(matches(
            &tagged,
            &Ticket {
                tags: vec!["vip".into()],
                ..urgent
            }
        ));
    }

    #[test]
    fn bad_policies_name_their_fields() {
        let mut p = SlaPolicy {
            priorities: vec![9],
            warning_percent: 100,
            escalations: vec![crm_proto::crm::servicedesk::v1::Escalation {
                stage: SlaStage::Breach as i32,
                action: EscalationAction::Reassign as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut p, &mut v);
        let fields: Vec<String> = v.fields().into_iter().map(str::to_owned).collect();
        assert_eq!(
            fields,
            vec![
                "policy.name",
                "policy.priorities[0]",
                "policy.resolution_minutes",
                "policy.warning_percent",
                "policy.escalations[0].assignee_id",
            ]
        );
    }
}
