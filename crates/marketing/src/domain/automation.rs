//! Automation rules: what a valid rule is, whether an event's data meets
//! its conditions, and which contact the event is about. The data is the
//! event payload as proto JSON with proto field names (enums by name,
//! 64-bit numbers and decimals as text).

use crm_proto::crm::marketing::v1::{ActionKind, AutomationRule, ConditionOperator, RuleStatus};
use kit::error::Violations;
use serde_json::Value;
use uuid::Uuid;

use super::text;

pub const MAX_CONDITIONS: usize = 20;
pub const MAX_ACTIONS: usize = 10;

/// The engagements the sales service scores (its `scoring::ENGAGEMENTS`):
/// a rule naming another would fail at every run.
pub const LEAD_ENGAGEMENTS: [&str; 3] = ["email_clicked", "form_submitted", "meeting_logged"];

/// What an action acts on, and so what a firing must carry for it to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Contact,
    Lead,
    /// The event itself (webhooks): every firing.
    Event,
}

pub fn subject_of(kind: ActionKind) -> Subject {
    match kind {
        ActionKind::AssignLead | ActionKind::RecordLeadEngagement => Subject::Lead,
        ActionKind::CallWebhook => Subject::Event,
        _ => Subject::Contact,
    }
}

/// A date trigger's field: `birthday` or `custom_fields.<name>`.
fn valid_date_field(field: &str) -> bool {
    field == "birthday"
        || field.strip_prefix("custom_fields.").is_some_and(|name| {
            !name.is_empty()
                && name.len() <= 100
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// `crm.<domain>.<entity>.<verb>.v<N>`, lower case.
pub fn valid_event_type(t: &str) -> bool {
    let parts: Vec<&str> = t.split('.').collect();
    parts.len() == 5
        && parts[0] == "crm"
        && parts[1..4].iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        && parts[4]
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && path
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Trims and checks a rule, reporting under `rule.`. Ids named by actions
/// are checked for form here; whether they exist, by the caller.
pub fn check(r: &mut AutomationRule, v: &mut Violations) {
    v.check(text("rule.name", &mut r.name, 200));
    if r.name.is_empty() {
        v.add("rule.name", "is required");
    }
    match RuleStatus::try_from(r.status) {
        Ok(RuleStatus::Unspecified) => r.status = RuleStatus::Active as i32,
        Ok(_) => {}
        Err(_) => v.add("rule.status", "is not a known rule status"),
    }
    r.event_type = r.event_type.trim().to_owned();
    match &mut r.date_trigger {
        Some(trigger) => {
            if !r.event_type.is_empty() {
                v.add("rule.event_type", "must be empty with a date trigger");
            }
            trigger.field = trigger.field.trim().to_owned();
            if !valid_date_field(&trigger.field) {
                v.add(
                    "rule.date_trigger.field",
                    "must be birthday or custom_fields.<name> of a date field",
                );
            }
            if !(0..=30).contains(&trigger.days_before) {
                v.add("rule.date_trigger.days_before", "must be 0 to 30");
            }
            if !(0..=23).contains(&trigger.hour) {
                v.add("rule.date_trigger.hour", "must be 0 to 23");
            }
            if !r.conditions.is_empty() {
                v.add(
                    "rule.conditions",
                    "a date trigger has no event data to test",
                );
            }
        }
        None if !valid_event_type(&r.event_type) => v.add(
            "rule.event_type",
            "must be an event type such as crm.sales.opportunity.won.v1 (or set a date trigger)",
        ),
        None => {}
    }
    r.lead_path = r.lead_path.trim().to_owned();
    if !r.lead_path.is_empty() && !valid_path(&r.lead_path) {
        v.add("rule.lead_path", "must be field names separated by dots");
    }
    r.contact_path = r.contact_path.trim().to_owned();
    if !r.contact_path.is_empty() && !valid_path(&r.contact_path) {
        v.add("rule.contact_path", "must be field names separated by dots");
    }
    if r.conditions.len() > MAX_CONDITIONS {
        v.add(
            "rule.conditions",
            format!("at most {MAX_CONDITIONS} conditions"),
        );
    }
    for (i, c) in r.conditions.iter_mut().enumerate() {
        let at = format!("rule.conditions[{i}]");
        c.path = c.path.trim().to_owned();
        if !valid_path(&c.path) {
            v.add(
                format!("{at}.path"),
                "must be field names separated by dots",
            );
        }
        v.check(text(&format!("{at}.value"), &mut c.value, 500));
        match ConditionOperator::try_from(c.operator) {
            Ok(ConditionOperator::Unspecified) | Err(_) => {
                v.add(format!("{at}.operator"), "must name an operator")
            }
            Ok(ConditionOperator::GreaterThan | ConditionOperator::LessThan) => {
                if c.value.parse::<rust_decimal::Decimal>().is_err() {
                    v.add(format!("{at}.value"), "must be a number for this operator");
                }
            }
            Ok(ConditionOperator::Exists) => {}
            Ok(_) => {
                if c.value.is_empty() {
                    v.add(format!("{at}.value"), "is required for this operator");
                }
            }
        }
    }
    if r.actions.is_empty() || r.actions.len() > MAX_ACTIONS {
        v.add(
            "rule.actions",
            format!("must have 1 to {MAX_ACTIONS} actions"),
        );
    }
    for (i, a) in r.actions.iter_mut().enumerate() {
        let at = format!("rule.actions[{i}]");
        let id = |v: &mut Violations, field: &str, raw: &str, required: bool| {
            if raw.is_empty() {
                if required {
                    v.add(format!("{at}.{field}"), "is required for this action");
                }
            } else if Uuid::parse_str(raw).is_err() {
                v.add(format!("{at}.{field}"), "is not a valid id");
            }
        };
        match ActionKind::try_from(a.kind) {
            Ok(ActionKind::SendTemplate) => {
                id(v, "template_id", &a.template_id, true);
                id(v, "sender_identity_id", &a.sender_identity_id, false);
            }
            Ok(ActionKind::AddToSegment | ActionKind::RemoveFromSegment) => {
                id(v, "segment_id", &a.segment_id, true);
            }
            Ok(ActionKind::CreateTask) => {
                v.check(text(
                    &format!("{at}.task_subject"),
                    &mut a.task_subject,
                    200,
                ));
                if a.task_subject.is_empty() {
                    v.add(format!("{at}.task_subject"), "is required for this action");
                }
                if !(0..=365).contains(&a.task_due_in_days) {
                    v.add(format!("{at}.task_due_in_days"), "must be 0 to 365");
                }
                id(v, "task_assignee_id", &a.task_assignee_id, false);
            }
            Ok(ActionKind::AssignLead) => {
                id(v, "lead_owner_id", &a.lead_owner_id, false);
            }
            Ok(ActionKind::RecordLeadEngagement) => {
                if !LEAD_ENGAGEMENTS.contains(&a.engagement.as_str()) {
                    v.add(
                        format!("{at}.engagement"),
                        format!("must be one of {}", LEAD_ENGAGEMENTS.join(", ")),
                    );
                }
            }
            Ok(ActionKind::CallWebhook) => {
                a.webhook_url = a.webhook_url.trim().to_owned();
                if a.webhook_url.is_empty() || a.webhook_url.len() > 2000 {
                    v.add(
                        format!("{at}.webhook_url"),
                        "is required (at most 2000 characters)",
                    );
                }
                if !(24..=200).contains(&a.webhook_secret.chars().count()) {
                    v.add(
                        format!("{at}.webhook_secret"),
                        "must be 24 to 200 characters",
                    );
                }
            }
            Ok(ActionKind::CreateTicket) => {
                v.check(text(
                    &format!("{at}.ticket_subject"),
                    &mut a.ticket_subject,
                    300,
                ));
                if a.ticket_subject.is_empty() {
                    v.add(
                        format!("{at}.ticket_subject"),
                        "is required for this action",
                    );
                }
                id(v, "ticket_group_id", &a.ticket_group_id, false);
                if crm_proto::crm::servicedesk::v1::TicketPriority::try_from(a.ticket_priority)
                    .is_err()
                {
                    v.add(format!("{at}.ticket_priority"), "is not a known priority");
                }
            }
            Ok(ActionKind::Unspecified) | Err(_) => {
                v.add(format!("{at}.kind"), "must name an action")
            }
        }
        let kind = ActionKind::try_from(a.kind).unwrap_or_default();
        if r.date_trigger.is_some() && subject_of(kind) == Subject::Lead {
            v.add(
                format!("{at}.kind"),
                "a date trigger fires for contacts, not leads",
            );
        }
    }
}

/// The value at a dotted path; a number picks a list item.
pub fn lookup<'a>(data: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(data, |at, part| match at {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Whether every condition holds for `data`. Absent fields hold nothing
/// but NOT_EQUALS (proto JSON leaves default values out, so an absent
/// number is 0 and an absent text is empty: compared as such).
pub fn matches(rule: &AutomationRule, data: &Value) -> bool {
    rule.conditions.iter().all(|c| {
        let found = lookup(data, &c.path);
        let op = ConditionOperator::try_from(c.operator).unwrap_or_default();
        let number = |v: &Value| as_text(v).parse::<rust_decimal::Decimal>().ok();
        let wanted = c.value.parse::<rust_decimal::Decimal>().ok();
        match op {
            ConditionOperator::Exists => found.is_some_and(|v| !is_empty(v)),
            ConditionOperator::Equals => found.map(as_text).unwrap_or_default() == c.value,
            ConditionOperator::NotEquals => found.map(as_text).unwrap_or_default() != c.value,
            ConditionOperator::GreaterThan => {
                matches!((found.map_or(Some(rust_decimal::Decimal::ZERO), number), wanted), (Some(a), Some(b)) if a > b)
            }
            ConditionOperator::LessThan => {
                matches!((found.map_or(Some(rust_decimal::Decimal::ZERO), number), wanted), (Some(a), Some(b)) if a < b)
            }
            ConditionOperator::Contains => match found {
                Some(Value::Array(items)) => items.iter().any(|i| as_text(i) == c.value),
                Some(v) => as_text(v)
                    .to_lowercase()
                    .contains(&c.value.to_lowercase()),
                None => false,
            },
            ConditionOperator::Unspecified => false,
        }
    })
}

/// The contact the event is about: at `path`, or (empty) at `contact_id`,
/// `contact.id` or the first of `contact_ids`.
pub fn contact_at(data: &Value, path: &str) -> Option<Uuid> {
    id_at(data, path, &["contact_id", "contact.id", "contact_ids.0"])
}

/// The lead the event is about: at `path`, or (empty) at `lead_id` or
/// `lead.id`.
pub fn lead_at(data: &Value, path: &str) -> Option<Uuid> {
    id_at(data, path, &["lead_id", "lead.id"])
}

/// The id at `path`, or (empty) at the first of `defaults` holding one.
fn id_at(data: &Value, path: &str, defaults: &[&str]) -> Option<Uuid> {
    let given = [path];
    let paths: &[&str] = if path.is_empty() { defaults } else { &given };
    paths
        .iter()
        .filter_map(|p| lookup(data, p))
        .find_map(|v| Uuid::parse_str(&as_text(v)).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::marketing::v1::{RuleAction, RuleCondition};
    use serde_json::json;

    fn rule(conditions: Vec<(&str, ConditionOperator, &str)>) -> AutomationRule {
        AutomationRule {
            name: "r".into(),
            event_type: "crm.sales.opportunity.won.v1".into(),
            conditions: conditions
                .into_iter()
                .map(|(path, op, value)| RuleCondition {
                    path: path.into(),
                    operator: op as i32,
                    value: value.into(),
                })
                .collect(),
            actions: vec![RuleAction {
                kind: ActionKind::AddToSegment as i32,
                segment_id: Uuid::now_v7().to_string(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn conditions_compare_text_numbers_lists_and_presence() {
        let data = json!({"opportunity": {"amount": {"amount": "1200.50", "currency": "EUR"}, "stage": "WON"},
                          "tags": ["vip", "eu"], "source": "Web Form"});
        use ConditionOperator::*;
        for (conditions, expected) in [
            (
                vec![("opportunity.amount.amount", GreaterThan, "1000")],
                true,
            ),
            (vec![("opportunity.amount.amount", LessThan, "1000")], false),
            (vec![("opportunity.amount.currency", Equals, "EUR")], true),
            (
                vec![("opportunity.amount.currency", NotEquals, "EUR")],
                false,
            ),
            (vec![("tags", Contains, "vip")], true),
            (vec![("source", Contains, "web")], true),
            (vec![("missing", Exists, "")], false),
            (vec![("missing", NotEquals, "x")], true),
            (vec![("tags.1", Equals, "eu")], true),
            (
                vec![("source", Exists, ""), ("tags", Contains, "nope")],
                false,
            ),
        ] {
            assert_eq!(
                matches(&rule(conditions.clone()), &data),
                expected,
                "{conditions:?}"
            );
        }
    }

    #[test]
    fn the_contact_is_found_where_events_carry_it() {
        let id = Uuid::now_v7();
        let r = rule(vec![]);
        for data in [
            json!({"contact_id": id.to_string()}),
            json!({"contact": {"id": id.to_string()}}),
            json!({"contact_ids": [id.to_string(), Uuid::now_v7().to_string()]}),
        ] {
            assert_eq!(contact_at(&data, &r.contact_path), Some(id), "{data}");
        }
        assert_eq!(contact_at(&json!({"contact_id": "nope"}), ""), None);
        let mut custom = rule(vec![]);
        custom.contact_path = "lead.converted_contact_id".into();
        let data = json!({"lead": {"converted_contact_id": id.to_string()}, "contact_id": Uuid::now_v7().to_string()});
        assert_eq!(contact_at(&data, &custom.contact_path), Some(id));
    }

    #[test]
    fn a_bad_rule_is_refused_field_by_field() {
        let mut r = AutomationRule {
            event_type: "sales won".into(),
            conditions: vec![RuleCondition {
                path: "a..b".into(),
                operator: ConditionOperator::GreaterThan as i32,
                value: "many".into(),
            }],
            actions: vec![RuleAction {
                kind: ActionKind::SendTemplate as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut v = Violations::new();
        check(&mut r, &mut v);
        let fields: Vec<String> = match v.into_result() {
            Err(kit::Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields,
            vec![
                "rule.name",
                "rule.event_type",
                "rule.conditions[0].path",
                "rule.conditions[0].value",
                "rule.actions[0].template_id"
            ]
        );
        let mut good = rule(vec![("source", ConditionOperator::Equals, "x")]);
        let mut v = Violations::new();
        check(&mut good, &mut v);
        assert!(v.into_result().is_ok());
        assert_eq!(good.status, RuleStatus::Active as i32);
    }
}
