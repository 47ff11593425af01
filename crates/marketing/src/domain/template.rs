//! Message templates: checked when saved (syntax, and every variable one
//! the platform fills), rendered per recipient in a sandbox with a budget.

use std::collections::HashSet;

use crm_proto::crm::customers::v1::Channel;
use crm_proto::crm::marketing::v1::{RenderedMessage, Template};
use kit::error::Violations;
use minijinja::{AutoEscape, Environment};

use super::text;

/// The variables every recipient has (empty when the record has none).
pub const VARIABLES: &[&str] = &[
    "contact.first_name",
    "contact.last_name",
    "contact.full_name",
    "contact.title",
    "contact.email",
    "contact.language",
    "account.name",
    "account.domain",
    "account.industry",
];

/// Largest part of a template, in bytes.
const MAX_PART: usize = 256 * 1024;
/// SMS text, in characters (ten concatenated segments).
const MAX_SMS: usize = 1600;
/// Instructions one rendering may take: a runaway loop ends here.
const FUEL: u64 = 100_000;

/// The sandbox templates render in: HTML parts escape values, the rest do
/// not; rendering stops when it runs out of fuel.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(20);
    env
}

/// The parts of a template as (field, name the environment knows it by, source).
fn parts(t: &Template) -> [(&'static str, &'static str, &str); 3] {
    [
        ("template.subject", "subject.txt", t.subject.as_str()),
        ("template.html_body", "body.html", t.html_body.as_str()),
        ("template.text_body", "body.txt", t.text_body.as_str()),
    ]
}

/// Checks and normalises a template; `custom_fields` are the keys of the
/// tenant's contact custom fields (`contact.custom.<key>`).
pub fn check(t: &mut Template, custom_fields: &HashSet<String>, v: &mut Violations) {
    v.check(text("template.name", &mut t.name, 200));
    if t.name.is_empty() {
        v.add("template.name", "is required");
    }
    let channel = match Channel::try_from(t.channel) {
        Ok(Channel::Unspecified) => Channel::Email,
        Ok(channel @ (Channel::Email | Channel::Sms)) => channel,
        _ => {
            v.add("template.channel", "must be CHANNEL_EMAIL or CHANNEL_SMS");
            Channel::Email
        }
    };
    t.channel = channel as i32;
    t.subject = t.subject.trim().to_owned();
    if t.text_body.trim().is_empty() {
        v.add("template.text_body", "is required");
    }
    match channel {
        Channel::Sms => {
            if !t.subject.is_empty() {
                v.add("template.subject", "SMS have no subject");
            }
            if !t.html_body.is_empty() {
                v.add("template.html_body", "SMS have no HTML part");
            }
            if t.text_body.chars().count() > MAX_SMS {
                v.add(
                    "template.text_body",
                    format!("an SMS is at most {MAX_SMS} characters"),
                );
            }
        }
        _ => {
            if t.subject.is_empty() {
                v.add("template.subject", "is required for e-mail");
            }
            if t.subject.contains(['\r', '\n']) {
                v.add("template.subject", "must be one line");
            }
        }
    }
    let env = environment();
    // Functions such as `range` are globals of the environment, not data.
    let globals: HashSet<&str> = env.globals().map(|(name, _)| name).collect();
    for (field, name, source) in parts(t) {
        if source.len() > MAX_PART {
            v.add(field, format!("is larger than {} KiB", MAX_PART / 1024));
            continue;
        }
        match env.template_from_named_str(name, source) {
            Err(error) => v.add(field, format!("is not a valid template: {error}")),
            Ok(template) => {
                let mut unknown: Vec<String> = template
                    .undeclared_variables(true)
                    .into_iter()
                    .filter(|name| !globals.contains(name.as_str()) && !known(name, custom_fields))
                    .collect();
                unknown.sort();
                if !unknown.is_empty() {
                    v.add(
                        field,
                        format!(
                            "uses unknown variables {}; known: {}, contact.custom.<key> for a contact custom field",
                            unknown.join(", "),
                            VARIABLES.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

fn known(name: &str, custom_fields: &HashSet<String>) -> bool {
    VARIABLES.contains(&name)
        || name
            .strip_prefix("contact.custom.")
            .is_some_and(|key| custom_fields.contains(key))
}

/// Renders every part for one recipient's variables (a JSON object with
/// `contact` and `account`, as resolved when the send was made).
pub fn render(t: &Template, variables: &serde_json::Value) -> Result<RenderedMessage, String> {
    let env = environment();
    let mut rendered = Vec::with_capacity(3);
    for (field, name, source) in parts(t) {
        let output = env
            .template_from_named_str(name, source)
            .and_then(|template| template.render(variables))
            .map_err(|error| format!("{field}: {error}"))?;
        rendered.push(output);
    }
    let mut rendered = rendered.into_iter();
    Ok(RenderedMessage {
        subject: rendered
            .next()
            .unwrap_or_default()
            .replace(['\r', '\n'], " "),
        html_body: rendered.next().unwrap_or_default(),
        text_body: rendered.next().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(subject: &str, html: &str, text: &str) -> Template {
        Template {
            name: "Welcome".into(),
            subject: subject.into(),
            html_body: html.into(),
            text_body: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn unknown_variables_and_bad_syntax_are_refused_when_saved() {
        let custom: HashSet<String> = ["tier".to_owned()].into();
        let mut t = email(
            "Hi {{ contact.first_nme }}",
            "<p>{% if %}</p>",
            "Tier {{ contact.custom.tier }} {{ contact.custom.shoe }}",
        );
        let mut v = Violations::new();
        check(&mut t, &custom, &mut v);
        assert_eq!(
            v.fields(),
            vec![
                "template.subject",
                "template.html_body",
                "template.text_body"
            ]
        );
        let mut ok = email(
            "Hi {{ contact.first_name }}",
            "<p>{{ account.name }}</p>",
            "{% for i in range(2) %}{{ i }}{% endfor %} {{ contact.custom.tier }}",
        );
        let mut v = Violations::new();
        check(&mut ok, &custom, &mut v);
        assert!(v.is_empty(), "{:?}", v.fields());
    }

    #[test]
    fn html_escapes_values_and_runaway_loops_stop() {
        let t = email(
            "Hello {{ contact.first_name }}",
            "<b>{{ contact.first_name }}</b>",
            "{{ contact.first_name }} from {{ account.name }}",
        );
        let vars =
            serde_json::json!({"contact": {"first_name": "<Ada>"}, "account": {"name": "Engines"}});
        let out = render(&t, &vars).expect("renders");
        assert_eq!(out.html_body, "<b>&lt;Ada&gt;</b>");
        assert_eq!(out.text_body, "<Ada> from Engines");
        let runaway = email(
            "x",
            "",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
        );
        assert!(render(&runaway, &vars).is_err());
    }
}
