//! What agents do to tickets in one step: field changes (of a macro or a
//! bulk job) and macros' replies, written as templates.

use crm_proto::crm::servicedesk::v1::{Macro, Ticket, TicketChanges, TicketPriority, TicketStatus};
use kit::error::Violations;
use kit::input::text;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::optional_id;
use super::ticket::{self, MAX_TAGS};

/// Longest macro reply template, in characters.
pub const MAX_REPLY: usize = 10_000;
/// Most tickets one bulk job changes.
pub const MAX_JOB_TICKETS: usize = 500;
/// Instructions one rendering may take: a runaway loop ends here.
const FUEL: u64 = 50_000;

/// Checks field changes; `prefix` names them in violations (`changes`,
/// `macro.changes`).
pub fn check_changes(c: &mut TicketChanges, prefix: &str, v: &mut Violations) {
    if TicketStatus::try_from(c.status).is_err() {
        v.add(format!("{prefix}.status"), "is not a known ticket status");
    }
    if TicketPriority::try_from(c.priority).is_err() {
        v.add(format!("{prefix}.priority"), "is not a known priority");
    }
    v.check(optional_id(
        &format!("{prefix}.assignee_id"),
        &c.assignee_id,
    ));
    if c.unassign && !c.assignee_id.is_empty() {
        v.add(
            format!("{prefix}.unassign"),
            "cannot be set with an assignee_id",
        );
    }
    v.check(optional_id(&format!("{prefix}.group_id"), &c.group_id));
    for (field, tags) in [
        ("add_tags", &mut c.add_tags),
        ("remove_tags", &mut c.remove_tags),
    ] {
        let field = format!("{prefix}.{field}");
        v.check(kit::tags::normalize(&field, tags));
        if tags.len() > MAX_TAGS {
            v.add(field, format!("at most {MAX_TAGS} tags"));
        }
    }
}

/// Whether changes change nothing at all.
pub fn is_empty(c: &TicketChanges) -> bool {
    c == &TicketChanges::default()
}

/// The ticket with `c` applied (not yet checked: the caller normalises it
/// and checks the status move, which may refuse it for this ticket).
pub fn apply(t: &Ticket, c: &TicketChanges) -> Ticket {
    let mut after = t.clone();
    if c.status != TicketStatus::Unspecified as i32 {
        after.status = c.status;
    }
    if c.priority != TicketPriority::Unspecified as i32 {
        after.priority = c.priority;
    }
    if c.unassign {
        after.assignee_id.clear();
    } else if !c.assignee_id.is_empty() {
        after.assignee_id = c.assignee_id.clone();
    }
    if !c.group_id.is_empty() {
        after.group_id = c.group_id.clone();
    }
    after.tags.retain(|tag| !c.remove_tags.contains(tag));
    for tag in &c.add_tags {
        if !after.tags.contains(tag) {
            after.tags.push(tag.clone());
        }
    }
    after
}

/// Checks what applying changes made of `before`: a valid ticket and an
/// allowed status move; the reason otherwise.
pub fn check_applied(before: &Ticket, after: &mut Ticket) -> Result<(), String> {
    if before.status == TicketStatus::Closed as i32 && after != before {
        return Err(CLOSED.into());
    }
    let mut v = Violations::new();
    ticket::normalize(after, &mut v);
    if let Err(reason) = ticket::check_move(before.status, after.status) {
        v.add("status", reason);
    }
    if let Err(reason) = ticket::check_solution(before.status, after) {
        v.add("status", reason);
    }
    v.into_result().map_err(|e| e.to_string())
}

/// Why a closed ticket refuses a change.
pub const CLOSED: &str = "a closed ticket no longer changes; open a follow-up";

/// What a macro's reply may use.
#[derive(Serialize)]
pub struct ReplyContext {
    pub ticket: TicketVars,
    pub requester: RequesterVars,
}

#[derive(Serialize)]
pub struct TicketVars {
    pub number: i64,
    pub subject: String,
    /// `open`, `pending_customer`, ...
    pub status: String,
    /// `low` ... `urgent`.
    pub priority: String,
}

#[derive(Serialize, Default)]
pub struct RequesterVars {
    pub first_name: String,
    pub last_name: String,
    pub name: String,
}

impl ReplyContext {
    pub fn new(t: &Ticket, first_name: String, last_name: String) -> Self {
        let name = format!("{first_name} {last_name}").trim().to_owned();
        let lower = |name: &str, prefix: &str| name.trim_start_matches(prefix).to_ascii_lowercase();
        ReplyContext {
            ticket: TicketVars {
                number: t.number,
                subject: t.subject.clone(),
                status: lower(
                    TicketStatus::try_from(t.status)
                        .unwrap_or_default()
                        .as_str_name(),
                    "TICKET_STATUS_",
                ),
                priority: lower(
                    TicketPriority::try_from(t.priority)
                        .unwrap_or_default()
                        .as_str_name(),
                    "TICKET_PRIORITY_",
                ),
            },
            requester: RequesterVars {
                first_name,
                last_name,
                name,
            },
        }
    }
}

/// Plain-text templates: no escaping, unknown variables are errors, a
/// bounded amount of work.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(10);
    env
}

/// Renders a macro's reply for a ticket.
pub fn render(reply: &str, context: &ReplyContext) -> Result<String, String> {
    environment()
        .render_str(reply, context)
        .map(|text| text.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// Checks and normalises a macro: a name, a reply template that renders
/// (syntax, known variables) and valid changes; it must do something.
pub fn check_macro(m: &mut Macro, v: &mut Violations) {
    v.check(text("macro.name", &mut m.name, 200));
    if m.name.is_empty() {
        v.add("macro.name", "is required");
    }
    m.reply = m.reply.replace("\r\n", "\n").trim().to_owned();
    if m.reply.chars().count() > MAX_REPLY {
        v.add("macro.reply", format!("at most {MAX_REPLY} characters"));
    } else if !m.reply.is_empty() {
        let sample = ReplyContext::new(
            &Ticket {
                number: 1,
                subject: "Sample".into(),
                ..Default::default()
            },
            "Ada".into(),
            "Lovelace".into(),
        );
        if let Err(reason) = render(&m.reply, &sample) {
            v.add("macro.reply", reason);
        }
    }
    let mut changes = m.changes.take().unwrap_or_default();
    check_changes(&mut changes, "macro.changes", v);
    if m.reply.is_empty() && is_empty(&changes) {
        v.add("macro.reply", "a macro needs a reply or changes");
    }
    m.changes = Some(changes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_render_known_variables_and_refuse_others() {
        let t = Ticket {
            number: 42,
            subject: "Printer".into(),
            status: TicketStatus::PendingCustomer as i32,
            ..Default::default()
        };
        let context = ReplyContext::new(&t, "Ada".into(), "Lovelace".into());
        assert_eq!(
            render(
                "Hi {{ requester.first_name }}, #{{ ticket.number }} is {{ ticket.status }}.",
                &context
            )
            .as_deref(),
            Ok("Hi Ada, #42 is pending_customer.")
        );
        let mut m = Macro {
            name: "Nope".into(),
            reply: "{{ requester.password }} {% for %}".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        check_macro(&mut m, &mut v);
        assert_eq!(v.fields(), ["macro.reply"]);
        let mut m = Macro {
            name: "Endless".into(),
            reply: "{% for i in range(100000) %}{{ i }}{% endfor %}".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        check_macro(&mut m, &mut v);
        assert_eq!(v.fields(), ["macro.reply"], "out of fuel");
    }

    #[test]
    fn changes_apply_what_they_name_and_leave_the_rest() {
        let t = Ticket {
            status: TicketStatus::Open as i32,
            priority: TicketPriority::Normal as i32,
            assignee_id: "a".into(),
            tags: vec!["billing".into(), "vip".into()],
            ..Default::default()
        };
        let mut c = TicketChanges {
            status: TicketStatus::Solved as i32,
            add_tags: vec!["Refund".into()],
            remove_tags: vec!["vip".into()],
            unassign: true,
            ..Default::default()
        };
        let mut v = Violations::new();
        check_changes(&mut c, "changes", &mut v);
        assert!(v.is_empty());
        let after = apply(&t, &c);
        assert_eq!(after.status, TicketStatus::Solved as i32);
        assert_eq!(after.priority, TicketPriority::Normal as i32);
        assert_eq!(after.assignee_id, "");
        assert_eq!(after.tags, ["billing", "refund"]);
        let mut bad = TicketChanges {
            status: 99,
            assignee_id: "x".into(),
            unassign: true,
            ..Default::default()
        };
        check_changes(&mut bad, "changes", &mut v);
        assert_eq!(
            v.fields(),
            ["changes.status", "changes.assignee_id", "changes.unassign"]
        );
    }
}
