//! Routing by skill and workload, without I/O: skills and their levels,
//! who is eligible for a ticket, in which order a group's mode tries
//! them, and how a ticket change moves agents' loads.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_proto::crm::servicedesk::v1::{AssignmentMode, SkillLevel, Ticket, TicketStatus};
use kit::error::Violations;
use uuid::Uuid;

pub const MAX_SKILLS: usize = 50;
pub const MAX_SKILL_CHARS: usize = 64;
pub const MAX_LEVEL: i32 = 5;
pub const MAX_CAPACITY: i32 = 1_000;
pub const MAX_GROUPS: usize = 50;

/// Skill -> level, as stored.
pub type Skills = BTreeMap<String, i32>;

/// Lower-cases, defaults (level 1) and checks skills, reporting under
/// `field[i]`; a skill named twice keeps its highest level.
pub fn normalize_skills(field: &str, skills: &mut Vec<SkillLevel>, v: &mut Violations) {
    if skills.len() > MAX_SKILLS {
        v.add(field, format!("at most {MAX_SKILLS} skills"));
    }
    for (i, s) in skills.iter_mut().enumerate() {
        s.skill = s.skill.trim().to_lowercase();
        let valid = !s.skill.is_empty()
            && s.skill.chars().count() <= MAX_SKILL_CHARS
            && s.skill
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":._-".contains(c));
        if !valid {
            v.add(
                format!("{field}[{i}].skill"),
                format!("is 1-{MAX_SKILL_CHARS} of a-z, 0-9 and \":._-\""),
            );
        }
        if s.level == 0 {
            s.level = 1;
        }
        if !(1..=MAX_LEVEL).contains(&s.level) {
            v.add(
                format!("{field}[{i}].level"),
                format!("must be 1-{MAX_LEVEL}"),
            );
        }
    }
    *skills = skill_list(&skill_map(skills));
}

pub fn skill_map(skills: &[SkillLevel]) -> Skills {
    let mut map = Skills::new();
    for s in skills {
        let level = map.entry(s.skill.clone()).or_insert(s.level);
        *level = (*level).max(s.level);
    }
    map
}

pub fn skill_list(skills: &Skills) -> Vec<SkillLevel> {
    skills
        .iter()
        .map(|(skill, level)| SkillLevel {
            skill: skill.clone(),
            level: *level,
        })
        .collect()
}

/// Whether `held` has every skill of `required` at least at its level.
pub fn covers(held: &Skills, required: &Skills) -> bool {
    required
        .iter()
        .all(|(skill, level)| held.get(skill).is_some_and(|have| have >= level))
}

pub fn is_open(t: &Ticket) -> bool {
    t.status != TicketStatus::Solved as i32 && t.status != TicketStatus::Closed as i32
}

/// The agent holding an open ticket, if any.
pub fn holder(t: &Ticket) -> Option<Uuid> {
    if is_open(t) {
        Uuid::parse_str(&t.assignee_id).ok()
    } else {
        None
    }
}

/// Whether a change leaves the ticket waiting in its group's queue where
/// it did not wait before (new, moved, unassigned, reopened, or needing
/// other skills).
pub fn needs_routing(before: Option<&Ticket>, after: &Ticket) -> bool {
    let waits = |t: &Ticket| is_open(t) && t.assignee_id.is_empty() && !t.group_id.is_empty();
    waits(after)
        && before.is_none_or(|b| {
            !waits(b) || b.group_id != after.group_id || b.required_skills != after.required_skills
        })
}

/// An agent who might be given a ticket, as read before the final check.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub user_id: Uuid,
    pub skills: Skills,
    pub open_tickets: i32,
    pub calendar_id: Option<Uuid>,
    pub last_assigned_at: Option<DateTime<Utc>>,
}

/// Orders eligible candidates the way `mode` tries them: round robin by
/// who was given a ticket longest ago (never first), least loaded by open
/// tickets then the same.
pub fn order(mode: AssignmentMode, candidates: &mut [Candidate]) {
    let since = |c: &Candidate| {
        c.last_assigned_at
            .map(|t| t.timestamp_micros())
            .unwrap_or(i64::MIN)
    };
    match mode {
        AssignmentMode::LeastLoaded => {
            candidates.sort_by_key(|c| (c.open_tickets, since(c), c.user_id))
        }
        _ => candidates.sort_by_key(|c| (since(c), c.user_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(name: &str, level: i32) -> SkillLevel {
        SkillLevel {
            skill: name.into(),
            level,
        }
    }

    #[test]
    fn skills_are_normalized_and_checked() {
        let mut skills = vec![
            skill(" Language:DE ", 0),
            skill("language:de", 3),
            skill("bad skill", 9),
        ];
        let mut v = Violations::new();
        normalize_skills("agent.skills", &mut skills, &mut v);
        assert_eq!(
            v.fields(),
            vec!["agent.skills[2].skill", "agent.skills[2].level"]
        );
        assert_eq!(skills[1], skill("language:de", 3));
    }

    #[test]
    fn an_agent_covers_a_ticket_with_every_skill_at_its_level() {
        let held = skill_map(&[skill("language:de", 3), skill("product:router", 1)]);
        assert!(covers(&held, &skill_map(&[skill("language:de", 2)])));
        assert!(!covers(&held, &skill_map(&[skill("product:router", 2)])));
        assert!(!covers(&held, &skill_map(&[skill("language:fr", 1)])));
        assert!(covers(&held, &Skills::new()));
    }

    #[test]
    fn modes_order_candidates() {
        let at = |s| DateTime::from_timestamp(s, 0);
        let make = |n: u128, open, last| Candidate {
            user_id: Uuid::from_u128(n),
            skills: Skills::new(),
            open_tickets: open,
            calendar_id: None,
            last_assigned_at: last,
        };
        let mut c = vec![make(1, 0, at(30)), make(2, 5, at(10)), make(3, 2, None)];
        order(AssignmentMode::RoundRobin, &mut c);
        let ids: Vec<u128> = c.iter().map(|c| c.user_id.as_u128()).collect();
        assert_eq!(ids, vec![3, 2, 1]);
        order(AssignmentMode::LeastLoaded, &mut c);
        let ids: Vec<u128> = c.iter().map(|c| c.user_id.as_u128()).collect();
        assert_eq!(ids, vec![1, 3, 2]);
    }

    #[test]
    fn waiting_tickets_need_routing_once() {
        let group = Uuid::now_v7().to_string();
        let waiting = Ticket {
            group_id: group.clone(),
            status: TicketStatus::New as i32,
            ..Default::default()
        };
        assert!(needs_routing(None, &waiting));
        assert!(!needs_routing(Some(&waiting), &waiting));
        let held = Ticket {
            assignee_id: Uuid::now_v7().to_string(),
            ..waiting.clone()
        };
        assert!(needs_routing(Some(&held), &waiting));
        assert!(!needs_routing(None, &held));
    }
}
