//! The REST bindings declared in the proto contracts: every RPC whose
//! options carry a `google.api.http` rule becomes one or more
//! [`Binding`]s (verb, path template, body field), read once at start from
//! the descriptor set `crates/proto` compiles.
//!
//! Path templates are `/v1/contacts/{id}` or `/v1/contacts/{contact.id}`:
//! each `{...}` is one path segment bound to a (possibly nested) field of
//! the request. Custom methods are a trailing segment
//! (`/v1/leads/{id}/convert`), not `:verb` (ADR 0011).

use axum::http::Method;
use crm_proto::google::api::{http_rule::Pattern, HttpRule};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

/// Where the JSON body goes in the request message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyTarget {
    /// No body; every field not in the path is a query parameter.
    None,
    /// `body: "*"`: the body is the request message (less the path fields).
    Whole,
    /// `body: "contact"`: the body is that field; the rest are query parameters.
    Field(String),
}

/// One HTTP route of one RPC.
#[derive(Clone, Debug)]
pub struct Binding {
    pub method: MethodDescriptor,
    pub verb: Method,
    /// The template as written in the proto: `/v1/contacts/{id}`.
    pub template: String,
    /// Field paths of the template's variables, in order (`["id"]`).
    pub variables: Vec<String>,
    pub body: BodyTarget,
    /// `response_body`: the response field sent as the body, if not all.
    pub response_body: Option<String>,
    /// The domain serving it: `customers` for `crm.customers.v1`.
    pub domain: String,
}

impl Binding {
    /// The template in axum's syntax. Variables are renamed by position,
    /// `{id}`, `{id2}`, ...: axum names cannot hold dots, and routes sharing
    /// a prefix (hand-written ones too) must name its variables alike.
    /// Values are taken by position, so the names carry no meaning.
    pub fn axum_path(&self) -> String {
        let mut index = 0;
        self.template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    index += 1;
                    if index == 1 {
                        "{id}".to_owned()
                    } else {
                        format!("{{id{index}}}")
                    }
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `ContactService_GetContact`: stable and unique across the document.
    pub fn operation_id(&self) -> String {
        format!(
            "{}_{}",
            self.method.parent_service().name(),
            self.method.name()
        )
    }

    /// A create method (`Create*`, or `Log*` for records logged after the
    /// fact) answers 201 with a Location.
    pub fn is_create(&self) -> bool {
        let name = self.method.name();
        self.verb == Method::POST && (name.starts_with("Create") || name.starts_with("Log"))
    }

    /// A DELETE whose response is empty answers 204 with no body.
    pub fn is_delete(&self) -> bool {
        self.verb == Method::DELETE && self.method.output().fields().len() == 0
    }

    /// The message the HTTP response body holds.
    pub fn response_message(&self) -> MessageDescriptor {
        let output = self.method.output();
        self.response_body
            .as_deref()
            .and_then(|name| output.get_field_by_name(name))
            .and_then(|field| match field.kind() {
                Kind::Message(message) => Some(message),
                _ => None,
            })
            .unwrap_or(output)
    }
}

/// Every binding declared in `pool`, or an error naming the RPC whose rule
/// cannot be served (caught at start, and by the gateway's tests).
pub fn bindings(pool: &DescriptorPool) -> anyhow::Result<Vec<Binding>> {
    let Some(extension) = pool.get_extension_by_name("google.api.http") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for service in pool.services() {
        let Some(domain) = domain_of(service.package_name()) else {
            continue;
        };
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let rule: HttpRule = options
                .get_extension(&extension)
                .as_message()
                .ok_or_else(|| {
                    anyhow::anyhow!("{}: google.api.http is not a message", method.full_name())
                })?
                .transcode_to()
                .map_err(|e| anyhow::anyhow!("{}: bad google.api.http: {e}", method.full_name()))?;
            if method.is_client_streaming() || method.is_server_streaming() {
                anyhow::bail!(
                    "{}: streaming RPCs are not transcoded; give it a hand-written route",
                    method.full_name()
                );
            }
            for rule in std::iter::once(&rule).chain(rule.additional_bindings.iter()) {
                out.push(binding(&method, rule, domain)?);
            }
        }
    }
    Ok(out)
}

/// `crm.customers.v1` -> `customers`.
pub fn domain_of(package: &str) -> Option<&str> {
    let mut parts = package.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("crm"), Some(domain), Some(version), None)
            if domain != "common" && version.starts_with('v') =>
        {
            Some(domain)
        }
        _ => None,
    }
}

fn binding(method: &MethodDescriptor, rule: &HttpRule, domain: &str) -> anyhow::Result<Binding> {
    let name = method.full_name();
    let (verb, template) = match &rule.pattern {
        Some(Pattern::Get(path)) => (Method::GET, path),
        Some(Pattern::Post(path)) => (Method::POST, path),
        Some(Pattern::Put(path)) => (Method::PUT, path),
        Some(Pattern::Patch(path)) => (Method::PATCH, path),
        Some(Pattern::Delete(path)) => (Method::DELETE, path),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| anyhow::anyhow!("{name}: bad custom verb {}", custom.kind))?,
            &custom.path,
        ),
        None => anyhow::bail!("{name}: google.api.http has no verb"),
    };
    if !template.starts_with('/') || template.contains(':') {
        anyhow::bail!("{name}: path {template} must start with / and use /verb, not :verb");
    }
    let input = method.input();
    let mut variables = Vec::new();
    for segment in template.split('/') {
        if let Some(inner) = segment.strip_prefix('{') {
            let field = inner
                .strip_suffix('}')
                .filter(|f| !f.contains('=') && !f.contains('{'))
                .ok_or_else(|| {
                    anyhow::anyhow!("{name}: segment {segment} must be a whole {{field}}")
                })?;
            let leaf = field_at(&input, field).ok_or_else(|| {
                anyhow::anyhow!("{name}: {field} is not a field of {}", input.full_name())
            })?;
            if leaf.is_list() || leaf.is_map() || matches!(leaf.kind(), Kind::Message(_)) {
                anyhow::bail!("{name}: path variable {field} must be a scalar field");
            }
            variables.push(field.to_owned());
        }
    }
    let body = match rule.body.as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::Whole,
        field => {
            input.get_field_by_name(field).ok_or_else(|| {
                anyhow::anyhow!("{name}: body {field} is not a field of the request")
            })?;
            BodyTarget::Field(field.to_owned())
        }
    };
    let response_body = match rule.response_body.as_str() {
        "" => None,
        field => {
            let found = method.output().get_field_by_name(field);
            if !found
                .as_ref()
                .is_some_and(|f| matches!(f.kind(), Kind::Message(_)) && !f.is_list())
            {
                anyhow::bail!(
                    "{name}: response_body {field} must be a message field of the response"
                );
            }
            Some(field.to_owned())
        }
    };
    Ok(Binding {
        method: method.clone(),
        verb,
        template: template.clone(),
        variables,
        body,
        response_body,
        domain: domain.to_owned(),
    })
}

/// The field at a dotted path (`contact.id`), through singular messages.
pub fn field_at(message: &MessageDescriptor, path: &str) -> Option<FieldDescriptor> {
    let mut current = message.clone();
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let field = current
            .get_field_by_name(part)
            .or_else(|| current.get_field_by_json_name(part))?;
        if parts.peek().is_none() {
            return Some(field);
        }
        match field.kind() {
            Kind::Message(inner) if !field.is_list() && !field.is_map() => current = inner,
            _ => return None,
        }
    }
    None
}
