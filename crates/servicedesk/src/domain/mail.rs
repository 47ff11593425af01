//! The e-mail channel's rules: support addresses, what an inbound message
//! says (who, what, which thread), which messages are machines talking
//! (auto-replies, bounces, lists: never tickets, or two desks would answer
//! each other forever), and how replies are subjected and threaded.

use crm_proto::crm::servicedesk::v1::Mailbox;
use kit::error::Violations;
use kit::input::text;
use mail_parser::{HeaderValue, MessageParser};

use super::optional_id;
use super::ticket::{MAX_BODY, MAX_SUBJECT};

/// What a queued mail is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i16)]
pub enum MailKind {
    /// An agent's public reply (its ticket message).
    Reply = 1,
    /// The satisfaction survey of a solved ticket.
    Survey = 2,
    /// A support form ticket's first mail: received, and the portal link.
    Acknowledgement = 3,
    /// A portal link a person asked for (about no ticket).
    PortalLink = 4,
    /// An NPS survey to an account's contact.
    Nps = 5,
}

/// Largest inbound message taken (headers, body and attachments).
pub const MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// Message-IDs of `References` looked at, newest first: enough for any
/// real thread, bounded against a header of thousands.
const MAX_REFERENCES: usize = 20;

/// A support address in canonical form: trimmed, lower case, checked.
pub fn normalize_address(field: &str, address: &mut String, v: &mut Violations) {
    *address = address.trim().to_lowercase();
    if address.is_empty() {
        v.add(field, "is required");
    } else if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
        v.add(field, "is not an e-mail address");
    }
}

pub fn normalize_mailbox(m: &mut Mailbox, v: &mut Violations) {
    normalize_address("mailbox.address", &mut m.address, v);
    v.check(text("mailbox.name", &mut m.name, 200));
    v.check(optional_id("mailbox.group_id", &m.group_id));
}

/// What the desk needs of an inbound message.
#[derive(Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The sender's address, lower case.
    pub from: String,
    /// The sender's display name, if any.
    pub from_name: String,
    pub subject: String,
    /// The new text: the plain body with the quoted earlier conversation
    /// cut off, trimmed to what a message holds.
    pub body: String,
    /// This message's id, without angle brackets; made up from the content
    /// when the sender gave none.
    pub message_id: String,
    /// Ids it answers: In-Reply-To first, then References newest first.
    pub answers: Vec<String>,
    /// Why it is a machine's message, if it is one.
    pub automatic: Option<&'static str>,
}

// Addresses and content are personal data: never printed.
impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("message_id", &self.message_id)
            .field("answers", &self.answers.len())
            .field("automatic", &self.automatic)
            .finish_non_exhaustive()
    }
}

/// Reads a raw message; `None` when it is not a message at all or has no
/// sender address to answer.
pub fn parse(raw: &[u8], envelope_from: &str) -> Option<Inbound> {
    let message = MessageParser::default().parse(raw)?;
    let from_addr = message.from().and_then(|a| a.first());
    let from = from_addr
        .and_then(|a| a.address())
        .unwrap_or(envelope_from)
        .trim()
        .to_lowercase();
    if from.parse::<lettre::Address>().is_err() {
        return None;
    }
    let from_name = from_addr
        .and_then(|a| a.name())
        .map(|n| clean(n, 200))
        .unwrap_or_default();
    let mut subject = clean(message.subject().unwrap_or_default(), MAX_SUBJECT);
    if subject.is_empty() {
        subject = "(no subject)".into();
    }
    let text = message.body_text(0).unwrap_or_default();
    let mut body = clean(&strip_quoted(&text), MAX_BODY);
    if body.is_empty() {
        body = "(empty message)".into();
    }
    let message_id = match message.message_id() {
        Some(id) if !id.trim().is_empty() && id.len() <= 250 => id.trim().to_owned(),
        // A stable id of the content: the same message delivered twice is
        // still recognised.
        _ => format!(
            "{}@no-message-id",
            kit::events::address_hash(&String::from_utf8_lossy(raw))
        ),
    };
    let mut answers = ids(message.in_reply_to());
    let mut references = ids(message.references());
    references.reverse();
    answers.extend(references.into_iter().take(MAX_REFERENCES));
    answers.dedup();
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
    };
    Some(Inbound {
        from,
        from_name,
        subject,
        body,
        message_id,
        answers,
        automatic: automatic(envelope_from, &header),
    })
}

fn ids(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.trim().to_owned()],
        HeaderValue::TextList(list) => list.iter().map(|id| id.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
}

/// Why a message is a machine's and must not become a ticket or a message:
/// a bounce (empty envelope sender), `Auto-Submitted` other than `no`
/// (RFC 3834), `Precedence` bulk/junk/list/auto_reply, the auto-reply
/// headers of common mail systems, or a mailing list.
pub fn automatic(
    envelope_from: &str,
    header: &dyn Fn(&str) -> Option<String>,
) -> Option<&'static str> {
    let envelope = envelope_from.trim().trim_matches(['<', '>']);
    if envelope.is_empty() || envelope.to_ascii_lowercase().starts_with("mailer-daemon@") {
        return Some("bounce");
    }
    if header("Auto-Submitted").is_some_and(|v| v != "no") {
        return Some("auto-submitted");
    }
    if header("Precedence")
        .is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list" | "auto_reply"))
    {
        return Some("bulk precedence");
    }
    if header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Auto-Response-Suppress")
            .is_some_and(|v| v.contains("all") || v.contains("autoreply"))
    {
        return Some("auto-reply");
    }
    if header("List-Id").is_some() || header("List-Unsubscribe").is_some() {
        return Some("mailing list");
    }
    None
}

/// The ticket number a subject names with the token replies carry
/// (`Re: Printer on fire [#1042]`).
pub fn subject_number(subject: &str) -> Option<i64> {
    let start = subject.rfind("[#")?;
    let rest = &subject[start + 2..];
    let end = rest.find(']')?;
    rest[..end].parse().ok().filter(|n| *n > 0)
}

/// The subject of a reply: `Re: ` once, and the ticket token once.
pub fn reply_subject(subject: &str, number: i64) -> String {
    let token = format!("[#{number}]");
    let mut out = if subject.to_ascii_lowercase().starts_with("re:") {
        subject.to_owned()
    } else {
        format!("Re: {subject}")
    };
    if !subject.contains(&token) {
        out = format!("{out} {token}");
    }
    out
}

/// The survey mail's text: the ticket, and a link per score (the page
/// asks again before recording: mail scanners open links).
pub fn survey_text(subject: &str, number: i64, url: &str) -> String {
    let mut text = format!(
        "Your request #{number} \"{subject}\" was solved. How did we do?\n\n\
         Rate us from 1 (poor) to 5 (great):\n"
    );
    for score in 1..=5 {
        text.push_str(&format!("  {score}: {url}?score={score}\n"));
    }
    text.push_str("\nThe link works for 30 days.\n");
    text
}

/// The text above the quoted earlier conversation: everything from the
/// first `> ` block or "On ... wrote:" line that ends the message.
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    while end > 0 {
        let line = lines[end - 1].trim();
        if line.is_empty() || line.starts_with('>') {
            end -= 1;
        } else {
            break;
        }
    }
    if end > 0 && end < lines.len() {
        let line = lines[end - 1].trim();
        if line.ends_with("wrote:") || line.ends_with("schrieb:") || line.ends_with("a écrit :") {
            end -= 1;
        }
    }
    let kept = lines[..end].join("\n");
    if kept.trim().is_empty() {
        text.to_owned()
    } else {
        kept.trim_end().to_owned()
    }
}

/// Text as the desk keeps it: control characters other than line breaks
/// and tabs dropped, trimmed, at most `max` characters.
fn clean(value: &str, max: usize) -> String {
    value
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra: &str) -> Vec<u8> {
        format!(
            "From: \"Ada Lovelace\" <Ada@Example.COM>\r\nTo: support@desk.test\r\n\
             Subject: Printer on fire [#42]\r\nMessage-ID: <m1@example.com>\r\n\
             In-Reply-To: <r2@desk.test>\r\nReferences: <r0@desk.test> <r1@desk.test> <r2@desk.test>\r\n\
             {extra}\r\nIt smokes.\r\n\r\nOn Monday, support wrote:\r\n> Have you tried\r\n> turning it off?\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_message_gives_sender_thread_and_new_text() {
        let m = parse(&message(""), "ada@example.com").expect("parses");
        assert_eq!(m.from, "ada@example.com");
        assert_eq!(m.from_name, "Ada Lovelace");
        assert_eq!(m.subject, "Printer on fire [#42]");
        assert_eq!(m.body, "It smokes.");
        assert_eq!(m.message_id, "m1@example.com");
        assert_eq!(m.answers, ["r2@desk.test", "r1@desk.test", "r0@desk.test"]);
        assert_eq!(m.automatic, None);
        assert_eq!(subject_number(&m.subject), Some(42));
    }

    #[test]
    fn machines_are_recognised() {
        for (extra, envelope, reason) in [
            (
                "Auto-Submitted: auto-replied\r\n",
                "ada@example.com",
                "auto-submitted",
            ),
            ("Precedence: bulk\r\n", "ada@example.com", "bulk precedence"),
            ("X-Autoreply: yes\r\n", "ada@example.com", "auto-reply"),
            (
                "List-Id: <news.example.com>\r\n",
                "ada@example.com",
                "mailing list",
            ),
            ("", "", "bounce"),
            ("", "MAILER-DAEMON@example.com", "bounce"),
        ] {
            let m = parse(&message(extra), envelope).expect("parses");
            assert_eq!(m.automatic, Some(reason), "{extra:?} from {envelope:?}");
        }
        let person = parse(&message("Auto-Submitted: no\r\n"), "ada@example.com").expect("parses");
        assert_eq!(person.automatic, None);
    }

    #[test]
    fn replies_carry_one_re_and_one_token() {
        assert_eq!(reply_subject("Printer", 7), "Re: Printer [#7]");
        assert_eq!(reply_subject("RE: Printer [#7]", 7), "RE: Printer [#7]");
        assert_eq!(subject_number("no token"), None);
        assert_eq!(subject_number("[#x] [#0]"), None);
    }

    #[test]
    fn bad_addresses_are_named() {
        let mut m = Mailbox {
            address: " Support@Example.COM ".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize_mailbox(&mut m, &mut v);
        assert!(v.is_empty());
        assert_eq!(m.address, "support@example.com");
        m.address = "not an address".into();
        m.group_id = "nope".into();
        normalize_mailbox(&mut m, &mut v);
        assert_eq!(v.fields(), ["mailbox.address", "mailbox.group_id"]);
    }
}
