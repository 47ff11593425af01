//! Tickets: their defaults, bounds and status moves, the changes a
//! history records, and messages.

use crm_proto::crm::servicedesk::v1::{
    Attachment, CallDetails, CallDirection, CallOutcome, LinkKind, MessageKind, Ticket,
    TicketChannel, TicketMessage, TicketPriority, TicketStatus, TicketType,
};
use kit::error::Violations;

use super::{optional_id, text};

pub const MAX_SUBJECT: usize = 300;
pub const MAX_DESCRIPTION: usize = 20_000;
pub const MAX_BODY: usize = 50_000;
pub const MAX_TAGS: usize = 20;

kit::field_mask!(
    apply_mask,
    changed_fields,
    Ticket,
    "ticket",
    [
        subject,
        description,
        r#type,
        priority,
        status,
        requester_contact_id,
        account_id,
        assignee_id,
        group_id,
        tags,
        product_id,
        order_id,
        opportunity_id,
        due_at,
        parent_ticket_id,
        required_skills,
        root_cause_id,
        custom_fields,
    ]
);

/// Trims, defaults and checks a ticket, reporting under `ticket.`.
pub fn normalize(t: &mut Ticket, v: &mut Violations) {
    v.check(text("ticket.subject", &mut t.subject, MAX_SUBJECT));
    if t.subject.is_empty() {
        v.add("ticket.subject", "is required");
    }
    t.description = t.description.replace("\r\n", "\n");
    v.check(text(
        "ticket.description",
        &mut t.description,
        MAX_DESCRIPTION,
    ));
    if TicketType::try_from(t.r#type).is_err() {
        v.add("ticket.type", "is not a known ticket type");
    }
    match TicketPriority::try_from(t.priority) {
        Ok(TicketPriority::Unspecified) => t.priority = TicketPriority::Normal as i32,
        Ok(_) => {}
        Err(_) => v.add("ticket.priority", "is not a known priority"),
    }
    match TicketStatus::try_from(t.status) {
        Ok(TicketStatus::Unspecified) => t.status = TicketStatus::New as i32,
        Ok(_) => {}
        Err(_) => v.add("ticket.status", "is not a known ticket status"),
    }
    match TicketChannel::try_from(t.channel) {
        Ok(TicketChannel::Unspecified) => t.channel = TicketChannel::Api as i32,
        Ok(_) => {}
        Err(_) => v.add("ticket.channel", "is not a known channel"),
    }
    for (field, value) in [
        ("ticket.requester_contact_id", &t.requester_contact_id),
        ("ticket.account_id", &t.account_id),
        ("ticket.assignee_id", &t.assignee_id),
        ("ticket.group_id", &t.group_id),
        ("ticket.product_id", &t.product_id),
        ("ticket.order_id", &t.order_id),
        ("ticket.opportunity_id", &t.opportunity_id),
        ("ticket.parent_ticket_id", &t.parent_ticket_id),
        ("ticket.root_cause_id", &t.root_cause_id),
    ] {
        v.check(optional_id(field, value).map(|_| ()));
    }
    if let Some(due) = &t.due_at {
        if kit::time::from_timestamp("ticket.due_at", due).is_err() {
            v.add("ticket.due_at", "is not a valid time");
        }
    }
    v.check(kit::tags::normalize("ticket.tags", &mut t.tags));
    super::routing::normalize_skills("ticket.required_skills", &mut t.required_skills, v);
    if t.tags.len() > MAX_TAGS {
        v.add("ticket.tags", format!("at most {MAX_TAGS} tags"));
    }
    if !t.parent_ticket_id.is_empty() && t.parent_ticket_id == t.id {
        v.add("ticket.parent_ticket_id", "cannot be the ticket itself");
    }
}

fn status(raw: i32) -> TicketStatus {
    TicketStatus::try_from(raw).unwrap_or_default()
}

/// Whether a ticket may move from one status to another: a closed ticket
/// is final, and only a solved one may be closed.
pub fn check_move(from: i32, to: i32) -> Result<(), String> {
    match (status(from), status(to)) {
        (a, b) if a == b => Ok(()),
        (TicketStatus::Closed, _) => Err("a closed ticket no longer changes".into()),
        (a, TicketStatus::Closed) if a != TicketStatus::Solved => {
            Err("only a solved ticket can be closed".into())
        }
        _ => Ok(()),
    }
}

/// Whether a change may stand as far as its root cause goes: a complaint
/// is solved with the reason it came (`ticket.root_cause_id`).
pub fn check_solution(from: i32, after: &Ticket) -> Result<(), String> {
    if solves(from, after.status)
        && after.r#type == TicketType::Complaint as i32
        && after.root_cause_id.is_empty()
    {
        return Err("a complaint is solved with its root cause".into());
    }
    Ok(())
}

/// A link's kind seen from the other ticket.
pub fn inverse(kind: LinkKind) -> LinkKind {
    match kind {
        LinkKind::CausedBy => LinkKind::Causes,
        LinkKind::Causes => LinkKind::CausedBy,
        other => other,
    }
}

/// A link kind as history shows it: `caused by`.
pub fn link_name(kind: LinkKind) -> String {
    kind.as_str_name()
        .trim_start_matches("LINK_KIND_")
        .to_lowercase()
        .replace('_', " ")
}

/// Whether a move reopens a solved ticket.
pub fn reopens(from: i32, to: i32) -> bool {
    status(from) == TicketStatus::Solved
        && !matches!(status(to), TicketStatus::Solved | TicketStatus::Closed)
}

pub fn solves(from: i32, to: i32) -> bool {
    status(from) != TicketStatus::Solved && status(to) == TicketStatus::Solved
}

/// A field's value as the history shows it: enums by name, times in RFC
/// 3339, lists comma-separated.
pub fn field_text(t: &Ticket, field: &str) -> String {
    let name = |n: Option<&str>| n.unwrap_or_default().to_owned();
    match field {
        "subject" => t.subject.clone(),
        "description" => format!("<{} characters>", t.description.chars().count()),
        "type" => name(TicketType::try_from(t.r#type).ok().map(|e| e.as_str_name())),
        "priority" => name(
            TicketPriority::try_from(t.priority)
                .ok()
                .map(|e| e.as_str_name()),
        ),
        "status" => name(
            TicketStatus::try_from(t.status)
                .ok()
                .map(|e| e.as_str_name()),
        ),
        "requester_contact_id" => t.requester_contact_id.clone(),
        "account_id" => t.account_id.clone(),
        "assignee_id" => t.assignee_id.clone(),
        "group_id" => t.group_id.clone(),
        "tags" => t.tags.join(","),
        "product_id" => t.product_id.clone(),
        "order_id" => t.order_id.clone(),
        "opportunity_id" => t.opportunity_id.clone(),
        "due_at" => t
            .due_at
            .as_ref()
            .and_then(|d| chrono::DateTime::from_timestamp(d.seconds, 0))
            .map(|d| d.to_rfc3339())
            .unwrap_or_default(),
        "parent_ticket_id" => t.parent_ticket_id.clone(),
        "root_cause_id" => t.root_cause_id.clone(),
        "custom_fields" => {
            let values: std::collections::BTreeMap<_, _> = t
                .custom_fields
                .iter()
                .map(|(k, v)| (k, kit::values::value_to_json(v)))
                .collect();
            serde_json::to_string(&values).unwrap_or_default()
        }
        "required_skills" => t
            .required_skills
            .iter()
            .map(|s| format!("{}:{}", s.skill, s.level))
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

/// The status a message moves a ticket to: an agent's first public answer
/// opens a new ticket; the customer writing back reopens one that waited
/// for them or was solved.
pub fn status_after_message(kind: MessageKind, status: i32) -> Option<i32> {
    match (kind, self::status(status)) {
        (MessageKind::PublicReply, TicketStatus::New) => Some(TicketStatus::Open as i32),
        (MessageKind::CustomerMessage, TicketStatus::PendingCustomer | TicketStatus::Solved) => {
            Some(TicketStatus::Open as i32)
        }
        _ => None,
    }
}

/// Checks a message added through the API, reporting under `message.`:
/// an agent's public reply or internal note, or, from an integration (a
/// chat or messaging connector: `integration`), what the customer wrote.
pub fn normalize_message(
    m: &mut TicketMessage,
    ticket_channel: i32,
    integration: bool,
    v: &mut Violations,
) {
    m.body = m.body.replace("\r\n", "\n");
    v.check(text("message.body", &mut m.body, MAX_BODY));
    if m.body.is_empty() {
        v.add("message.body", "is required");
    }
    match MessageKind::try_from(m.kind) {
        Ok(MessageKind::PublicReply | MessageKind::InternalNote) => {}
        Ok(MessageKind::CustomerMessage) if integration => {}
        _ if integration => v.add(
            "message.kind",
            "must be MESSAGE_KIND_PUBLIC_REPLY, MESSAGE_KIND_INTERNAL_NOTE or MESSAGE_KIND_CUSTOMER_MESSAGE",
        ),
        _ => v.add(
            "message.kind",
            "must be MESSAGE_KIND_PUBLIC_REPLY or MESSAGE_KIND_INTERNAL_NOTE",
        ),
    }
    check_attachments(&mut m.attachments, v);
    if let Some(call) = &m.call {
        check_call(call, v);
        match TicketChannel::try_from(m.channel) {
            Ok(TicketChannel::Unspecified | TicketChannel::Phone) => {
                m.channel = TicketChannel::Phone as i32;
            }
            _ => v.add(
                "message.channel",
                "a logged call is on TICKET_CHANNEL_PHONE",
            ),
        }
    }
    match TicketChannel::try_from(m.channel) {
        Ok(TicketChannel::Unspecified) => m.channel = ticket_channel,
        Ok(_) => {}
        Err(_) => v.add("message.channel", "is not a known channel"),
    }
}

/// Files one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
/// Largest file a message may refer to.
pub const MAX_ATTACHMENT_BYTES: i64 = 25 * 1024 * 1024;

/// The content types a message may carry and their file name extensions:
/// documents and pictures people send support, nothing that runs.
const ATTACHMENT_TYPES: [(&str, &[&str]); 15] = [
    ("image/png", &["png"]),
    ("image/jpeg", &["jpg", "jpeg"]),
    ("image/gif", &["gif"]),
    ("image/webp", &["webp"]),
    ("application/pdf", &["pdf"]),
    ("text/plain", &["txt", "log"]),
    ("text/csv", &["csv"]),
    ("message/rfc822", &["eml"]),
    ("application/zip", &["zip"]),
    ("application/vnd.oasis.opendocument.text", &["odt"]),
    ("application/vnd.oasis.opendocument.spreadsheet", &["ods"]),
    ("application/vnd.oasis.opendocument.presentation", &["odp"]),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &["docx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        &["xlsx"],
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        &["pptx"],
    ),
];

/// Checks a message's attachments: a reference the desk can keep, a name
/// people can see safely, an allowed type the name agrees with, a size.
fn check_attachments(attachments: &mut [Attachment], v: &mut Violations) {
    if attachments.len() > MAX_ATTACHMENTS {
        v.add(
            "message.attachments",
            format!("at most {MAX_ATTACHMENTS} files per message"),
        );
        return;
    }
    for (i, a) in attachments.iter_mut().enumerate() {
        let field = |name: &str| format!("message.attachments[{i}].{name}");
        a.uri = a.uri.trim().to_owned();
        let scheme_ok = match a.uri.parse::<http::Uri>() {
            Ok(uri) => {
                matches!(uri.scheme_str(), Some("https" | "s3"))
                    && uri.host().is_some_and(|h| !h.is_empty())
            }
            Err(_) => false,
        };
        if a.uri.len() > 2_000 || !scheme_ok {
            v.add(
                field("uri"),
                "must be an https:// or s3:// address of at most 2,000 characters",
            );
        }
        v.check(text(&field("file_name"), &mut a.file_name, 255));
        if a.file_name.is_empty()
            || a.file_name.contains(['/', '\\'])
            || a.file_name.starts_with('.')
        {
            v.add(
                field("file_name"),
                "is required: a file name without folders",
            );
        }
        a.content_type = a.content_type.trim().to_ascii_lowercase();
        match ATTACHMENT_TYPES.iter().find(|(t, _)| *t == a.content_type) {
            None => v.add(field("content_type"), "is not a type messages may carry"),
            Some((_, extensions)) => {
                let extension = a
                    .file_name
                    .rsplit_once('.')
                    .map(|(_, e)| e.to_ascii_lowercase())
                    .unwrap_or_default();
                if !extensions.contains(&extension.as_str()) {
                    v.add(
                        field("file_name"),
                        format!(
                            "must end in .{} for {}",
                            extensions.join(" or ."),
                            a.content_type
                        ),
                    );
                }
            }
        }
        if !(1..=MAX_ATTACHMENT_BYTES).contains(&a.size_bytes) {
            v.add(field("size_bytes"), "must be 1 byte to 25 MiB");
        }
    }
}

/// Longest call logged: a day.
pub const MAX_CALL_SECONDS: i32 = 86_400;

fn check_call(call: &CallDetails, v: &mut Violations) {
    if !matches!(
        CallDirection::try_from(call.direction),
        Ok(CallDirection::Inbound | CallDirection::Outbound)
    ) {
        v.add(
            "message.call.direction",
            "must be CALL_DIRECTION_INBOUND or CALL_DIRECTION_OUTBOUND",
        );
    }
    if matches!(
        CallOutcome::try_from(call.outcome),
        Ok(CallOutcome::Unspecified) | Err(_)
    ) {
        v.add(
            "message.call.outcome",
            "is required: a known CALL_OUTCOME_*",
        );
    }
    if !(0..=MAX_CALL_SECONDS).contains(&call.duration_seconds) {
        v.add("message.call.duration_seconds", "must be 0 to 86400");
    }
}

/// Who wrote, as the channel knows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// Lower case; empty when the channel has none.
    pub email: String,
    /// E.164; empty when the channel has none.
    pub phone: String,
    pub name: String,
}

// Personal data: never printed.
impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender(<personal data>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(uri: &str, name: &str, content_type: &str, size: i64) -> Attachment {
        Attachment {
            uri: uri.into(),
            file_name: name.into(),
            content_type: content_type.into(),
            size_bytes: size,
        }
    }

    #[test]
    fn attachments_are_references_to_allowed_files_of_bounded_size() {
        let mut m = TicketMessage {
            kind: MessageKind::PublicReply as i32,
            body: "See the manual.".into(),
            attachments: vec![
                attachment(
                    "https://files.example.com/a/manual.pdf",
                    "Manual.PDF",
                    "Application/PDF",
                    1_000,
                ),
                attachment(
                    "s3://bucket/screens/1.png",
                    "screen.png",
                    "image/png",
                    25 * 1024 * 1024,
                ),
            ],
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize_message(&mut m, TicketChannel::Email as i32, false, &mut v);
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(m.attachments[0].content_type, "application/pdf");

        m.attachments = vec![
            attachment(
                "http://files.example.com/x.pdf",
                "x.pdf",
                "application/pdf",
                10,
            ),
            attachment(
                "https://files.example.com/x",
                "invoice.exe",
                "application/pdf",
                10,
            ),
            attachment(
                "https://files.example.com/x",
                "run.sh",
                "application/x-sh",
                0,
            ),
            attachment(
                "https://files.example.com/x",
                "../etc/passwd.txt",
                "text/plain",
                26 * 1024 * 1024,
            ),
        ];
        let mut v = Violations::new();
        normalize_message(&mut m, TicketChannel::Email as i32, false, &mut v);
        assert_eq!(
            v.fields(),
            [
                "message.attachments[0].uri",
                "message.attachments[1].file_name",
                "message.attachments[2].content_type",
                "message.attachments[2].size_bytes",
                "message.attachments[3].file_name",
                "message.attachments[3].size_bytes",
            ]
        );
        m.attachments = vec![
            attachment("https://f.example.com/a.png", "a.png", "image/png", 1);
            MAX_ATTACHMENTS + 1
        ];
        let mut v = Violations::new();
        normalize_message(&mut m, TicketChannel::Email as i32, false, &mut v);
        assert_eq!(v.fields(), ["message.attachments"]);
    }

    #[test]
    fn a_ticket_gets_defaults_and_bad_fields_are_named() {
        let mut t = Ticket {
            subject: "  Printer on fire ".into(),
            tags: vec!["Hardware".into(), "hardware".into()],
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut t, &mut v);
        assert!(v.into_result().is_ok());
        assert_eq!(t.subject, "Printer on fire");
        assert_eq!(t.status, TicketStatus::New as i32);
        assert_eq!(t.priority, TicketPriority::Normal as i32);
        assert_eq!(t.channel, TicketChannel::Api as i32);
        assert_eq!(t.tags, vec!["hardware"]);

        let mut bad = Ticket {
            priority: 9,
            assignee_id: "me".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut bad, &mut v);
        let fields: Vec<String> = match v.into_result() {
            Err(kit::Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields,
            vec!["ticket.subject", "ticket.priority", "ticket.assignee_id"]
        );
    }

    #[test]
    fn closed_is_final_and_only_solved_tickets_close() {
        use TicketStatus::*;
        let mv = |a: TicketStatus, b: TicketStatus| check_move(a as i32, b as i32);
        assert!(mv(Open, Solved).is_ok());
        assert!(mv(Solved, Closed).is_ok());
        assert!(mv(Open, Closed).is_err());
        assert!(mv(Closed, Open).is_err());
        assert!(reopens(Solved as i32, Open as i32));
        assert!(!reopens(Solved as i32, Closed as i32));
        assert!(solves(PendingCustomer as i32, Solved as i32));
    }
}
