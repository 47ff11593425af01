//! Lead-capture forms: what a valid form definition is, and how a posted
//! submission becomes a lead's fields (each value checked the way the sales
//! service checks a lead, so every accepted submission makes a lead).

use std::collections::{HashMap, HashSet};

use crm_proto::crm::customers::v1::Channel;
use crm_proto::crm::marketing::v1::{Form, FormField, FormFieldTarget, SubmittedLead};
use kit::contact_point::{normalize_domain, Email, PhoneE164};
use kit::error::Violations;

use super::text;

pub const MAX_FIELDS: usize = 30;
/// Values longer than this are refused, whatever the field.
pub const MAX_VALUE_CHARS: usize = 2000;
/// A post with more inputs than this is not a person's.
pub const MAX_INPUTS: usize = 100;
const DEFAULT_HONEYPOT: &str = "website";

fn valid_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Trims and checks a form definition, reporting under `form.`.
pub fn check(f: &mut Form, v: &mut Violations) {
    v.check(text("form.name", &mut f.name, 200));
    if f.name.is_empty() {
        v.add("form.name", "is required");
    }
    if f.fields.is_empty() || f.fields.len() > MAX_FIELDS {
        v.add("form.fields", format!("must have 1 to {MAX_FIELDS} fields"));
    }
    v.check(text("form.honeypot_field", &mut f.honeypot_field, 40));
    if f.honeypot_field.is_empty() {
        f.honeypot_field = DEFAULT_HONEYPOT.into();
    } else if !valid_name(&f.honeypot_field) {
        v.add(
            "form.honeypot_field",
            "must be lower-case letters, digits and underscores",
        );
    }
    let mut names = HashSet::new();
    let mut targets = HashSet::new();
    let mut identifies = false;
    for (i, field) in f.fields.iter_mut().enumerate() {
        let at = format!("form.fields[{i}]");
        field.name = field.name.trim().to_owned();
        if !valid_name(&field.name) {
            v.add(
                format!("{at}.name"),
                "must be 1 to 40 lower-case letters, digits and underscores",
            );
        } else if field.name == f.honeypot_field {
            v.add(format!("{at}.name"), "is the form's honeypot field");
        } else if !names.insert(field.name.clone()) {
            v.add(format!("{at}.name"), "is used by another field");
        }
        v.check(text(&format!("{at}.label"), &mut field.label, 200));
        if field.label.is_empty() {
            v.add(format!("{at}.label"), "is required");
        }
        match FormFieldTarget::try_from(field.target) {
            Ok(FormFieldTarget::Unspecified) | Err(_) => {
                v.add(format!("{at}.target"), "must name a lead field")
            }
            Ok(target) => {
                if !targets.insert(target) {
                    v.add(format!("{at}.target"), "is filled by another field");
                }
                identifies |= field.required
                    && matches!(
                        target,
                        FormFieldTarget::Email
                            | FormFieldTarget::LastName
                            | FormFieldTarget::Company
                    );
            }
        }
    }
    if !f.fields.is_empty() && !identifies {
        v.add(
            "form.fields",
            "a required field must fill the e-mail, the last name or the company (a lead needs one)",
        );
    }
    if let Some(consent) = f.consent.as_mut() {
        if matches!(
            Channel::try_from(consent.channel),
            Ok(Channel::Unspecified) | Err(_)
        ) {
            v.add("form.consent.channel", "must name a channel");
        }
        v.check(text("form.consent.wording", &mut consent.wording, 2000));
        if consent.wording.is_empty() {
            v.add("form.consent.wording", "is required");
        }
    }
    v.check(text(
        "form.thank_you_message",
        &mut f.thank_you_message,
        2000,
    ));
    v.check(text("form.redirect_url", &mut f.redirect_url, 2000));
    if !f.redirect_url.is_empty() && !super::is_web_url(&f.redirect_url) {
        v.add("form.redirect_url", "must be an http(s) address");
    }
}

/// Whether a post filled the honeypot: a bot's, to be dropped.
pub fn is_spam(f: &Form, values: &HashMap<String, String>) -> bool {
    values
        .get(&f.honeypot_field)
        .is_some_and(|value| !value.trim().is_empty())
}

/// Whether the consent box was ticked ("on", "true", "yes", "1").
fn ticked(value: Option<&String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "on" | "true" | "yes" | "1"
        )
    })
}

/// The input name of the consent checkbox.
pub const CONSENT_INPUT: &str = "consent";

/// A post's values as the lead's fields and whether consent was given;
/// every problem is reported under the input's name.
pub fn submission(
    f: &Form,
    values: &HashMap<String, String>,
    v: &mut Violations,
) -> (SubmittedLead, bool) {
    let mut lead = SubmittedLead::default();
    if values.len() > MAX_INPUTS {
        v.add("values", format!("has more than {MAX_INPUTS} inputs"));
        return (lead, false);
    }
    for field in &f.fields {
        let name = field.name.as_str();
        let mut value = values.get(name).cloned().unwrap_or_default();
        if v.check(text(name, &mut value, MAX_VALUE_CHARS)).is_none() {
            continue;
        }
        if value.is_empty() {
            if field.required {
                v.add(name, "is required");
            }
            continue;
        }
        fill(&mut lead, field, value, v);
    }
    let consent = ticked(values.get(CONSENT_INPUT));
    if let Some(c) = &f.consent {
        if c.required && !consent {
            v.add(CONSENT_INPUT, "must be given to submit this form");
        }
    }
    (lead, consent && f.consent.is_some())
}

/// One checked value into its lead field.
fn fill(lead: &mut SubmittedLead, field: &FormField, value: String, v: &mut Violations) {
    let name = field.name.as_str();
    let bounded = |v: &mut Violations, max: usize, value: String| {
        if value.chars().count() > max {
            v.add(name, format!("is longer than {max} characters"));
        }
        value
    };
    match FormFieldTarget::try_from(field.target).unwrap_or_default() {
        FormFieldTarget::FirstName => lead.first_name = bounded(v, 100, value),
        FormFieldTarget::LastName => lead.last_name = bounded(v, 100, value),
        FormFieldTarget::Title => lead.title = bounded(v, 200, value),
        FormFieldTarget::Company => lead.company = bounded(v, 200, value),
        FormFieldTarget::Region => lead.region = bounded(v, 100, value),
        FormFieldTarget::Industry => lead.industry = bounded(v, 100, value),
        FormFieldTarget::Message => lead.message = value,
        FormFieldTarget::Email => match Email::parse(&value) {
            Ok(email) => lead.email = email.as_str().to_owned(),
            Err(why) => v.add(name, why),
        },
        FormFieldTarget::Phone => match PhoneE164::parse(&value) {
            Ok(phone) => lead.phone = phone.as_str().to_owned(),
            Err(why) => v.add(name, why),
        },
        FormFieldTarget::CompanyDomain => match normalize_domain(&value) {
            Ok(domain) => lead.company_domain = domain,
            Err(why) => v.add(name, why),
        },
        FormFieldTarget::Country => {
            let code = value.to_ascii_uppercase();
            if code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()) {
                lead.country = code;
            } else {
                v.add(name, "must be a two-letter country code such as DE");
            }
        }
        FormFieldTarget::CompanySize => match value.parse::<i32>() {
            Ok(size) if size >= 0 => lead.company_size = size,
            _ => v.add(name, "must be a whole number of employees"),
        },
        FormFieldTarget::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::marketing::v1::FormConsent;

    fn field(name: &str, target: FormFieldTarget, required: bool) -> FormField {
        FormField {
            name: name.into(),
            label: name.into(),
            target: target as i32,
            required,
        }
    }

    fn form() -> Form {
        Form {
            name: "Demo request".into(),
            fields: vec![
                field("email", FormFieldTarget::Email, true),
                field("name", FormFieldTarget::LastName, false),
                field("employees", FormFieldTarget::CompanySize, false),
            ],
            consent: Some(FormConsent {
                channel: Channel::Email as i32,
                wording: "Send me news".into(),
                required: true,
            }),
            ..Default::default()
        }
    }

    fn fields_of(v: Violations) -> Vec<String> {
        match v.into_result() {
            Ok(()) => Vec::new(),
            Err(kit::Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_form_needs_a_field_that_makes_a_lead() {
        let mut f = form();
        f.fields[0].required = false;
        f.fields.push(field("email", FormFieldTarget::Phone, false));
        f.fields
            .push(field("website", FormFieldTarget::Title, false));
        let mut v = Violations::new();
        check(&mut f, &mut v);
        assert_eq!(
            fields_of(v),
            ["form.fields[3].name", "form.fields[4].name", "form.fields"]
        );
        let mut good = form();
        let mut v = Violations::new();
        check(&mut good, &mut v);
        assert!(fields_of(v).is_empty());
        assert_eq!(good.honeypot_field, "website");
    }

    #[test]
    fn a_submission_is_checked_field_by_field() {
        let mut f = form();
        check(&mut f, &mut Violations::new());
        let post = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let mut v = Violations::new();
        submission(&f, &post(&[("email", "nope"), ("employees", "-3")]), &mut v);
        assert_eq!(fields_of(v), ["email", "employees", "consent"]);
        let mut v = Violations::new();
        let (lead, consent) = submission(
            &f,
            &post(&[
                ("email", " Ada@Example.COM "),
                ("employees", "40"),
                ("consent", "on"),
                ("extra", "ignored"),
            ]),
            &mut v,
        );
        assert!(fields_of(v).is_empty());
        assert!(consent);
        assert_eq!(lead.email, "ada@example.com");
        assert_eq!(lead.company_size, 40);
        assert!(is_spam(&f, &post(&[("website", "http://spam")])));
        assert!(!is_spam(&f, &post(&[("website", " ")])));
    }
}
