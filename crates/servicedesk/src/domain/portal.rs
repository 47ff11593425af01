//! The customer portal's rules: the magic link that signs a requester in,
//! what a support form submission must hold, and the mail that carries the
//! link.

use kit::error::Violations;
use kit::input::text;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::mail::normalize_address;
use super::ticket::{Sender, MAX_BODY, MAX_SUBJECT};

/// How long a portal link works. Short enough that a forwarded or leaked
/// mail stops opening the portal within a week; a person asks for a new
/// link on any support form.
pub const LIFETIME: chrono::Duration = chrono::Duration::days(7);

/// Longest name taken from a form.
const MAX_NAME: usize = 200;

/// What a portal link carries: the contact it signs in, and the mailbox it
/// was mailed from (tickets opened in the portal are answered from it).
/// Unknown fields are refused, so no other link of the desk (a survey)
/// reads as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalLink {
    #[serde(rename = "t")]
    pub tenant: Uuid,
    #[serde(rename = "c")]
    pub contact: Uuid,
    #[serde(rename = "m")]
    pub mailbox: Uuid,
    #[serde(rename = "e")]
    pub expires: i64,
}

impl kit::links::SignedLink for PortalLink {
    fn tenant(&self) -> Uuid {
        self.tenant
    }

    fn expires(&self) -> i64 {
        self.expires
    }
}

/// A support form's key: `<tenant>.<form id>`.
pub fn form_key(tenant: Uuid, form: Uuid) -> String {
    format!("{}.{}", tenant.simple(), form.simple())
}

/// The tenant and form a key names, if it is one.
pub fn parse_form_key(key: &str) -> Option<(Uuid, Uuid)> {
    let (tenant, form) = key.split_once('.')?;
    Some((Uuid::try_parse(tenant).ok()?, Uuid::try_parse(form).ok()?))
}

/// Checks a form submission field by field; the sender it names.
pub fn check_submission(
    name: &mut String,
    email: &mut String,
    subject: &mut String,
    description: &mut String,
    v: &mut Violations,
) -> Sender {
    v.check(text("name", name, MAX_NAME));
    normalize_address("email", email, v);
    check_request(subject, description, v);
    Sender {
        email: email.clone(),
        phone: String::new(),
        name: name.clone(),
    }
}

/// A new request's subject and description: both required.
pub fn check_request(subject: &mut String, description: &mut String, v: &mut Violations) {
    v.check(text("subject", subject, MAX_SUBJECT));
    if subject.is_empty() {
        v.add("subject", "is required");
    }
    *description = description.replace("\r\n", "\n");
    v.check(text("description", description, MAX_BODY));
    if description.trim().is_empty() {
        v.add("description", "is required");
    }
}

/// A requester's reply: required, at most a message's length.
pub fn check_reply(body: &mut String, v: &mut Violations) {
    *body = body.replace("\r\n", "\n");
    v.check(text("body", body, MAX_BODY));
    if body.trim().is_empty() {
        v.add("body", "is required");
    }
}

/// The acknowledgement of a support form ticket.
pub fn acknowledgement_text(subject: &str, number: i64, url: &str) -> String {
    format!(
        "We received your request #{number} \"{subject}\" and will answer soon.\n\n\
         Follow it and answer us here: {url}\n\
         (The link works for 7 days; ask for a new one on our support page.)\n\n\
         You can also reply to this e-mail.\n"
    )
}

/// The mail carrying a portal link a person asked for.
pub fn link_text(url: &str) -> String {
    format!(
        "Here is your link to your support requests:\n\n{url}\n\n\
         It works for 7 days. If you did not ask for it, ignore this e-mail.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::satisfaction::Survey;
    use kit::links::LinkKey;

    #[test]
    fn submissions_are_checked_field_by_field() {
        let (mut name, mut email, mut subject, mut description) = (
            "Ada".to_owned(),
            " Ada@Example.COM ".to_owned(),
            "Broken".to_owned(),
            "It stopped.\r\nTwice.".to_owned(),
        );
        let mut v = Violations::new();
        let sender = check_submission(
            &mut name,
            &mut email,
            &mut subject,
            &mut description,
            &mut v,
        );
        assert!(v.is_empty());
        assert_eq!(sender.email, "ada@example.com");
        assert_eq!(description, "It stopped.\nTwice.");
        let (mut email, mut subject, mut description) =
            ("not an address".to_owned(), String::new(), " ".to_owned());
        check_submission(
            &mut name,
            &mut email,
            &mut subject,
            &mut description,
            &mut v,
        );
        assert_eq!(v.fields(), ["email", "subject", "description"]);
    }

    #[test]
    fn a_portal_link_is_no_survey_link_and_the_reverse() {
        let key = LinkKey::random();
        let (tenant, id) = (Uuid::now_v7(), Uuid::now_v7());
        let portal = key.sign(&PortalLink {
            tenant,
            contact: id,
            mailbox: id,
            expires: i64::MAX,
        });
        let survey = key.sign(&Survey {
            tenant,
            ticket: id,
            expires: i64::MAX,
        });
        assert!(key.verify::<PortalLink>(&portal, 0).is_some());
        assert!(key.verify::<Survey>(&portal, 0).is_none());
        assert!(key.verify::<PortalLink>(&survey, 0).is_none());
    }

    #[test]
    fn form_keys_name_their_tenant_and_form() {
        let (tenant, form) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            parse_form_key(&form_key(tenant, form)),
            Some((tenant, form))
        );
        assert_eq!(parse_form_key("x.y"), None);
        assert_eq!(parse_form_key(&tenant.to_string()), None);
    }
}
