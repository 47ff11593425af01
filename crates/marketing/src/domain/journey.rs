//! Journeys: what a valid journey is, and where an enrolment goes from a
//! step. Steps lead forward only, so every enrolment ends.

use std::collections::HashMap;

use crm_proto::crm::marketing::v1::{
    BranchCondition, Journey, JourneyStatus, JourneyStep, StepKind,
};
use kit::error::Violations;
use uuid::Uuid;

use super::text;

pub const MAX_STEPS: usize = 30;
/// A wait of at most a year.
pub const MAX_WAIT_SECONDS: i64 = 366 * 24 * 3600;

fn valid_key(key: &str) -> bool {
    (1..=40).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && path
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Trims and checks a journey, reporting under `journey.`. Template and
/// identity ids are checked for form here; whether they exist, by the
/// caller.
pub fn check(j: &mut Journey, v: &mut Violations) {
    v.check(text("journey.name", &mut j.name, 200));
    if j.name.is_empty() {
        v.add("journey.name", "is required");
    }
    match JourneyStatus::try_from(j.status) {
        Ok(JourneyStatus::Unspecified) => j.status = JourneyStatus::Active as i32,
        Ok(_) => {}
        Err(_) => v.add("journey.status", "is not a known journey status"),
    }
    for (field, value) in [
        ("journey.trigger_event_type", &mut j.trigger_event_type),
        ("journey.goal_event_type", &mut j.goal_event_type),
    ] {
        *value = value.trim().to_owned();
        if !value.is_empty() && !super::automation::valid_event_type(value) {
            v.add(
                field,
                "must be an event type such as crm.sales.opportunity.won.v1",
            );
        }
    }
    if j.steps.is_empty() || j.steps.len() > MAX_STEPS {
        v.add("journey.steps", format!("must have 1 to {MAX_STEPS} steps"));
    }
    let mut position = HashMap::new();
    for (i, s) in j.steps.iter_mut().enumerate() {
        s.key = s.key.trim().to_owned();
        if !valid_key(&s.key) {
            v.add(
                format!("journey.steps[{i}].key"),
                "must be 1 to 40 lower-case letters, digits and underscores",
            );
        } else if position.contains_key(&s.key) {
            v.add(format!("journey.steps[{i}].key"), "is used by another step");
        } else {
            position.insert(s.key.clone(), i);
        }
    }
    let kinds: HashMap<String, i32> = j.steps.iter().map(|s| (s.key.clone(), s.kind)).collect();
    for (i, s) in j.steps.iter_mut().enumerate() {
        let at = format!("journey.steps[{i}]");
        // A target must be a later step (or empty: the end).
        let forward = |v: &mut Violations, field: &str, target: &str| {
            if target.is_empty() {
                return;
            }
            match position.get(target) {
                Some(&p) if p > i => {}
                Some(_) => v.add(format!("{at}.{field}"), "must be a later step"),
                None => v.add(format!("{at}.{field}"), "no such step"),
            }
        };
        let id = |v: &mut Violations, field: &str, raw: &str, required: bool| {
            if raw.is_empty() {
                if required {
                    v.add(format!("{at}.{field}"), "is required for this step");
                }
            } else if Uuid::parse_str(raw).is_err() {
                v.add(format!("{at}.{field}"), "is not a valid id");
            }
        };
        match StepKind::try_from(s.kind) {
            Ok(StepKind::Send) => {
                id(v, "template_id", &s.template_id, true);
                id(v, "sender_identity_id", &s.sender_identity_id, false);
                forward(v, "next_step", &s.next_step);
            }
            Ok(StepKind::Wait) => {
                let by_time = s.wait_until.is_some();
                if by_time == (s.wait_seconds != 0) {
                    v.add(
                        format!("{at}.wait_seconds"),
                        "name either wait_seconds or wait_until",
                    );
                } else if !by_time && !(1..=MAX_WAIT_SECONDS).contains(&s.wait_seconds) {
                    v.add(format!("{at}.wait_seconds"), "must be 1 second to a year");
                }
                forward(v, "next_step", &s.next_step);
            }
            Ok(StepKind::Branch) => {
                match BranchCondition::try_from(s.condition) {
                    Ok(BranchCondition::Opened | BranchCondition::Clicked) => {
                        match kinds.get(&s.message_step) {
                            Some(&k)
                                if k == StepKind::Send as i32
                                    && position.get(&s.message_step).is_some_and(|&p| p < i) => {}
                            _ => v.add(
                                format!("{at}.message_step"),
                                "must name an earlier SEND step",
                            ),
                        }
                    }
                    Ok(BranchCondition::FieldEquals) => {
                        s.field = s.field.trim().to_owned();
                        if !valid_path(&s.field) {
                            v.add(
                                format!("{at}.field"),
                                "must be field names separated by dots",
                            );
                        }
                        v.check(text(&format!("{at}.value"), &mut s.value, 500));
                    }
                    _ => v.add(format!("{at}.condition"), "must name a condition"),
                }
                forward(v, "then_step", &s.then_step);
                forward(v, "else_step", &s.else_step);
            }
            _ => v.add(format!("{at}.kind"), "must name a step kind"),
        }
    }
}

/// The step after a SEND or WAIT at `index`: its `next_step`, else the
/// following one; None: the end.
pub fn after(j: &Journey, index: usize) -> Option<usize> {
    let step = j.steps.get(index)?;
    if step.next_step.is_empty() {
        (index + 1 < j.steps.len()).then_some(index + 1)
    } else {
        position(j, &step.next_step)
    }
}

pub fn position(j: &Journey, key: &str) -> Option<usize> {
    j.steps.iter().position(|s| s.key == key)
}

/// Where a branch goes.
pub fn branch(j: &Journey, step: &JourneyStep, holds: bool) -> Option<usize> {
    let target = if holds {
        &step.then_step
    } else {
        &step.else_step
    };
    if target.is_empty() {
        None
    } else {
        position(j, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(key: &str, kind: StepKind) -> JourneyStep {
        JourneyStep {
            key: key.into(),
            kind: kind as i32,
            ..Default::default()
        }
    }

    fn journey() -> Journey {
        let template = Uuid::now_v7().to_string();
        Journey {
            name: "Onboarding".into(),
            steps: vec![
                JourneyStep {
                    template_id: template.clone(),
                    ..step("welcome", StepKind::Send)
                },
                JourneyStep {
                    wait_seconds: 3 * 24 * 3600,
                    ..step("pause", StepKind::Wait)
                },
                JourneyStep {
                    condition: BranchCondition::Opened as i32,
                    message_step: "welcome".into(),
                    then_step: "offer".into(),
                    else_step: "reminder".into(),
                    ..step("opened", StepKind::Branch)
                },
                JourneyStep {
                    template_id: template.clone(),
                    next_step: "done".into(),
                    ..step("reminder", StepKind::Send)
                },
                JourneyStep {
                    template_id: template,
                    ..step("offer", StepKind::Send)
                },
                JourneyStep {
                    wait_seconds: 60,
                    ..step("done", StepKind::Wait)
                },
            ],
            ..Default::default()
        }
    }

    fn fields(j: &mut Journey) -> Vec<String> {
        let mut v = Violations::new();
        check(j, &mut v);
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(kit::Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn steps_lead_forward_to_the_end() {
        let mut j = journey();
        assert_eq!(fields(&mut j), Vec::<String>::new());
        assert_eq!(j.status, JourneyStatus::Active as i32);
        assert_eq!(after(&j, 0), Some(1));
        assert_eq!(after(&j, 3), Some(5), "reminder skips the offer");
        assert_eq!(after(&j, 5), None, "the last step ends it");
        assert_eq!(branch(&j, &j.steps[2].clone(), true), Some(4));
        assert_eq!(branch(&j, &j.steps[2].clone(), false), Some(3));
    }

    #[test]
    fn loops_unknown_targets_and_half_steps_are_refused() {
        let mut j = journey();
        j.steps[4].next_step = "welcome".into();
        j.steps[2].message_step = "offer".into();
        j.steps[1].wait_until = Some(prost_types::Timestamp::default());
        j.steps[3].next_step = "nowhere".into();
        j.steps[0].key = "reminder".into();
        assert_eq!(
            fields(&mut j),
            vec![
                "journey.steps[3].key",
                "journey.steps[1].wait_seconds",
                "journey.steps[2].message_step",
                "journey.steps[2].else_step",
                "journey.steps[3].next_step",
                "journey.steps[4].next_step",
            ]
        );
    }
}
