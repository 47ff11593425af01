//! Message templates: checked when saved (syntax, and every variable one
//! the platform fills), rendered per recipient in a sandbox with a budget.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::Channel;
use crm_proto::crm::marketing::v1::{RenderedMessage, Template};
use kit::error::Violations;
use minijinja::{AutoEscape, Environment};
use uuid::Uuid;

use super::links::{lifetime, Kind, Link, LinkKey};
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
    "unsubscribe_url",
];

/// How the links of one recipient's message are made: signed for the
/// public routes of the gateway at `base` (`{{ link("https://...") }}`,
/// `{{ unsubscribe_url }}`, the open pixel).
pub struct Links {
    pub key: LinkKey,
    pub base: String,
    pub tenant: Uuid,
    pub recipient: Uuid,
    pub now: DateTime<Utc>,
}

impl Links {
    pub fn url(&self, kind: Kind, target: &str) -> String {
        let link = Link {
            tenant: self.tenant,
            recipient: self.recipient,
            kind,
            url: target.to_owned(),
            expires: (self.now + lifetime(kind)).timestamp(),
        };
        let path = match kind {
            Kind::Open => "t/o",
            Kind::Click => "t/c",
            Kind::Unsubscribe => "u",
        };
        format!(
            "{}/{path}/{}",
            self.base.trim_end_matches('/'),
            self.key.sign(&link)
        )
    }
}

/// Largest part of a template, in bytes.
const MAX_PART: usize = 256 * 1024;
/// SMS text, in characters (ten concatenated segments).
const MAX_SMS: usize = 1600;
/// Instructions one rendering may take: a runaway loop ends here.
const FUEL: u64 = 100_000;

/// The sandbox templates render in: HTML parts escape values, the rest do
/// not; rendering stops when it runs out of fuel. `link(url)` makes a
/// tracked link for a recipient, and leaves the URL as it is otherwise
/// (previews).
fn environment(links: Option<Arc<Links>>) -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function("link", move |url: String| {
        if !super::is_web_url(&url) {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("link() needs an http(s) URL without spaces, got {url:?}"),
            ));
        }
        // A signed link holds only URL-safe characters, so it needs no
        // escaping; a preview's plain URL is escaped like any value.
        Ok(match &links {
            Some(links) => minijinja::Value::from_safe_string(links.url(Kind::Click, &url)),
            None => minijinja::Value::from(url),
        })
    });
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
    let env = environment(None);
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
                } else if let Err(error) = template.render(sample()) {
                    // What fails for every recipient (a bad link, a runaway
                    // loop) fails here, not at send time.
                    v.add(field, format!("does not render: {error}"));
                }
            }
        }
    }
}

/// Variables as every recipient has them, all empty.
fn sample() -> serde_json::Value {
    serde_json::json!({"contact": {"custom": {}}, "account": {}, "unsubscribe_url": ""})
}

fn known(name: &str, custom_fields: &HashSet<String>) -> bool {
    VARIABLES.contains(&name)
        || name
            .strip_prefix("contact.custom.")
            .is_some_and(|key| custom_fields.contains(key))
}

/// Renders every part for one recipient's variables (a JSON object with
/// `contact` and `account`, as resolved when the send was made); with
/// `links`, links are tracked, `unsubscribe_url` is the recipient's own and
/// the HTML part gets the open pixel.
pub fn render(
    t: &Template,
    variables: &serde_json::Value,
    links: Option<Arc<Links>>,
) -> Result<RenderedMessage, String> {
    let mut variables = variables.clone();
    if let Some(object) = variables.as_object_mut() {
        let unsubscribe = links
            .as_ref()
            .map(|l| l.url(Kind::Unsubscribe, ""))
            .unwrap_or_default();
        object.insert("unsubscribe_url".into(), unsubscribe.into());
    }
    let pixel = links.as_ref().map(|l| {
        format!(
            "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
            l.url(Kind::Open, "")
        )
    });
    let variables = &variables;
    let env = environment(links);
    let mut rendered = Vec::with_capacity(3);
    for (field, name, source) in parts(t) {
        let output = env
            .template_from_named_str(name, source)
            .and_then(|template| template.render(variables))
            .map_err(|error| format!("{field}: {error}"))?;
        rendered.push(output);
    }
    let mut rendered = rendered.into_iter();
    let subject = rendered
        .next()
        .unwrap_or_default()
        .replace(['\r', '\n'], " ");
    let mut html_body = rendered.next().unwrap_or_default();
    if let (Some(pixel), false) = (pixel, html_body.is_empty()) {
        match html_body.rfind("</body>") {
            Some(end) => html_body.insert_str(end, &pixel),
            None => html_body.push_str(&pixel),
        }
    }
    Ok(RenderedMessage {
        subject,
        html_body,
        text_body: rendered.next().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_signed_for_the_recipient_and_checked_when_saved() {
        let t = email(
            "x",
            "<html><body><a href=\"{{ link('https://example.com/a') }}\">a</a></body></html>",
            "{{ unsubscribe_url }}",
        );
        let key = LinkKey::random();
        let links = Arc::new(Links {
            key: key.clone(),
            base: "https://crm.example/".into(),
            tenant: Uuid::now_v7(),
            recipient: Uuid::now_v7(),
            now: Utc::now(),
        });
        let out = render(&t, &serde_json::json!({}), Some(links.clone())).expect("renders");
        let click = out
            .html_body
            .split("https://crm.example/t/c/")
            .nth(1)
            .expect("a tracked link");
        let token = &click[..click.find('"').expect("end of link")];
        let link = key
            .verify::<Link>(token, Utc::now().timestamp())
            .expect("a valid token");
        assert_eq!(
            (link.kind, link.url.as_str()),
            (Kind::Click, "https://example.com/a")
        );
        assert!(
            out.html_body.contains("https://crm.example/t/o/"),
            "open pixel"
        );
        assert!(
            out.html_body.ends_with("</body></html>"),
            "pixel inside the body"
        );
        assert!(out.text_body.starts_with("https://crm.example/u/"));
        let preview = render(&t, &serde_json::json!({}), None).expect("renders");
        assert!(
            !preview.html_body.contains("/t/c/"),
            "previews are not tracked"
        );

        let mut bad = email(
            "x",
            "<a href=\"{{ link('javascript:alert(1)') }}\">x</a>",
            "y",
        );
        let mut v = Violations::new();
        check(&mut bad, &HashSet::new(), &mut v);
        assert_eq!(v.fields(), vec!["template.html_body"]);
    }

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
        let out = render(&t, &vars, None).expect("renders");
        assert_eq!(out.html_body, "<b>&lt;Ada&gt;</b>");
        assert_eq!(out.text_body, "<Ada> from Engines");
        let runaway = email(
            "x",
            "",
            "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
        );
        assert!(render(&runaway, &vars, None).is_err());
    }
}
