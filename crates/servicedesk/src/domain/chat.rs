//! Chat connectors' posts: what one must hold, and the secret it is
//! signed with.

use kit::error::Violations;
use serde::Deserialize;
use uuid::Uuid;

use super::ticket::Sender;
use super::ticket::{MAX_BODY, MAX_SUBJECT};

/// How far a post's timestamp may be from now: a captured post cannot be
/// replayed later.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Longest id a connector gives a conversation or a message.
const MAX_ID: usize = 200;

/// A connector's post, as JSON.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Post {
    pub conversation_id: String,
    pub message_id: String,
    pub text: String,
    pub from: From,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct From {
    pub name: String,
    pub email: String,
    pub phone: String,
}

/// The label a channel's signing secret is derived under; a rotation
/// counts the generation up, so the old secret stops verifying.
pub fn secret_label(channel: Uuid, generation: i32) -> String {
    format!("chat-channel:{channel}:{generation}")
}

/// Checks a post; the sender it names.
pub fn check(post: &mut Post, v: &mut Violations) -> Sender {
    for (field, value) in [
        ("conversation_id", &mut post.conversation_id),
        ("message_id", &mut post.message_id),
    ] {
        *value = value.trim().to_owned();
        if value.is_empty() {
            v.add(field, "is required");
        } else if value.chars().count() > MAX_ID || value.chars().any(char::is_control) {
            v.add(
                field,
                format!("at most {MAX_ID} characters, no control characters"),
            );
        }
    }
    post.text = post.text.replace("\r\n", "\n").trim().to_owned();
    if post.text.is_empty() {
        v.add("text", "is required");
    } else if post.text.chars().count() > MAX_BODY {
        v.add("text", format!("at most {MAX_BODY} characters"));
    }
    let from = &mut post.from;
    from.email = from.email.trim().to_lowercase();
    from.phone = from.phone.trim().replace([' ', '-'], "");
    if from.email.is_empty() && from.phone.is_empty() {
        v.add("from", "needs an e-mail address or a phone number");
    }
    if !from.email.is_empty() && from.email.parse::<lettre::Address>().is_err() {
        v.add("from.email", "is not an e-mail address");
    }
    if !from.phone.is_empty() && !is_e164(&from.phone) {
        v.add("from.phone", "is not an E.164 number (+4915112345678)");
    }
    from.name = from
        .name
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned();
    Sender {
        email: from.email.clone(),
        phone: from.phone.clone(),
        name: from.name.clone(),
    }
}

fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// The subject of a ticket a chat opens: its first line, shortened.
pub fn subject(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default().trim();
    let mut subject: String = first.chars().take(80).collect();
    if first.chars().count() > 80 {
        subject.push('…');
    }
    format!("Chat: {subject}")
        .chars()
        .take(MAX_SUBJECT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_checked_field_by_field() {
        let mut post = Post {
            conversation_id: " c-1 ".into(),
            message_id: "m-1".into(),
            text: "Where is my order?\nIt is late.".into(),
            from: From {
                name: "Ada Lovelace".into(),
                email: "Ada@Example.com".into(),
                phone: "+49 151 1234 5678".into(),
            },
        };
        let mut v = Violations::new();
        let sender = check(&mut post, &mut v);
        assert!(v.is_empty());
        assert_eq!(sender.email, "ada@example.com");
        assert_eq!(sender.phone, "+4915112345678");
        assert_eq!(post.conversation_id, "c-1");
        assert_eq!(subject(&post.text), "Chat: Where is my order?");

        let mut empty = Post::default();
        let mut v = Violations::new();
        check(&mut empty, &mut v);
        assert_eq!(
            v.fields(),
            ["conversation_id", "message_id", "text", "from"]
        );
        let mut bad = Post {
            conversation_id: "c".into(),
            message_id: "m".into(),
            text: "hi".into(),
            from: From {
                email: "nope".into(),
                phone: "0151".into(),
                ..Default::default()
            },
        };
        let mut v = Violations::new();
        check(&mut bad, &mut v);
        assert_eq!(v.fields(), ["from.email", "from.phone"]);
    }
}
