//! HTTP <-> protobuf messages by the canonical proto3 JSON mapping.
//!
//! A request is assembled as one JSON object (the body, then query
//! parameters, then path variables, each at its field path) and decoded in
//! one pass by prost-reflect with unknown fields refused, so every rule of
//! the mapping (enum names, Timestamps as RFC 3339, FieldMasks, Structs)
//! is prost-reflect's, and an error names the JSON path that is wrong.

use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
};
use serde_json::{Map, Value};

use super::binding::{field_at, Binding, BodyTarget};
use crate::http::problem::Problem;

/// Field names on the wire are the proto names (`first_name`); 64-bit
/// integers are JSON numbers; every field is present, defaults included,
/// so a client sees the whole shape (ADR 0011).
pub const SERIALIZE: SerializeOptions = SerializeOptions::new()
    .use_proto_field_name(true)
    .stringify_64_bit_integers(false)
    .skip_default_fields(false);

/// The request message of `binding` from the path variables (in template
/// order), the raw query string and the body.
pub fn request(
    binding: &Binding,
    path: &[String],
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, Problem> {
    let input = binding.method.input();
    let mut root = match &binding.body {
        BodyTarget::None => Map::new(),
        BodyTarget::Whole => body_object(body)?,
        BodyTarget::Field(field) => {
            let mut root = Map::new();
            root.insert(field.clone(), Value::Object(body_object(body)?));
            root
        }
    };
    if let Some(query) = query {
        for (name, raw) in form_urlencoded::parse(query.as_bytes()) {
            if binding.body == BodyTarget::Whole {
                return Err(Problem::invalid(
                    &name,
                    "this operation takes its input in the body, not the query",
                ));
            }
            if let BodyTarget::Field(body_field) = &binding.body {
                if name.split('.').next() == Some(body_field.as_str()) {
                    return Err(Problem::invalid(&name, "is part of the body"));
                }
            }
            let path = paged(&input, &name);
            let field = field_at(&input, &path)
                .filter(is_scalar_leaf)
                .ok_or_else(|| Problem::invalid(&name, "is not a parameter of this operation"))?;
            set_at(
                &mut root,
                &path,
                scalar(&name, &field, &raw)?,
                field.is_list(),
            );
        }
    }
    if binding.verb == axum::http::Method::PATCH {
        implied_update_mask(&input, &binding.body, &mut root);
    }
    for (variable, raw) in binding.variables.iter().zip(path) {
        let field = field_at(&input, variable)
            .ok_or_else(|| Problem::invalid(variable, "is not a field of this operation"))?;
        set_at(&mut root, variable, scalar(variable, &field, raw)?, false);
    }
    decode(input, Value::Object(root))
}

/// AIP-134: a PATCH whose request has an `update_mask` and whose client
/// sent none changes exactly the fields present in the body.
fn implied_update_mask(
    input: &MessageDescriptor,
    body: &BodyTarget,
    root: &mut Map<String, Value>,
) {
    let BodyTarget::Field(body_field) = body else {
        return;
    };
    let Some(mask) = input.get_field_by_name("update_mask") else {
        return;
    };
    if root.contains_key("update_mask") || root.contains_key(mask.json_name()) {
        return;
    }
    let Some(Kind::Message(resource)) = input.get_field_by_name(body_field).map(|f| f.kind())
    else {
        return;
    };
    let Some(Value::Object(sent)) = root.get(body_field) else {
        return;
    };
    let fields: Vec<FieldDescriptor> = sent
        .keys()
        .filter_map(|key| {
            resource
                .get_field_by_name(key)
                .or_else(|| resource.get_field_by_json_name(key))
        })
        .collect();
    // google.protobuf.FieldMask: its JSON form is one string of
    // lowerCamelCase paths.
    let paths: Vec<&str> = fields.iter().map(|f| f.json_name()).collect();
    let value = Value::String(paths.join(","));
    root.insert("update_mask".to_owned(), value);
}

/// The paging convention (AIP-158): `page_size` and `page_token` are top
/// level query parameters, bound to the request's `page` message.
pub const PAGE_REQUEST: &str = "crm.common.v1.PageRequest";

fn paged(input: &MessageDescriptor, name: &str) -> String {
    let is_paged = input
        .get_field_by_name("page")
        .is_some_and(|f| matches!(f.kind(), Kind::Message(m) if m.full_name() == PAGE_REQUEST));
    if is_paged && matches!(name, "page_size" | "page_token") {
        format!("page.{name}")
    } else {
        name.to_owned()
    }
}

/// The JSON object of a body; an empty body is an empty object.
fn body_object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Problem::invalid("body", "must be a JSON object")),
        Err(error) => {
            let mut problem = Problem::invalid("body", error.to_string());
            problem.detail = "the body is not valid JSON".into();
            Err(problem)
        }
    }
}

/// Decodes a JSON value into `message`, naming the JSON path of the first
/// problem (`contact.emails[0].address`).
pub fn decode(message: MessageDescriptor, json: Value) -> Result<DynamicMessage, Problem> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(json, &mut track);
    DynamicMessage::deserialize_with_options(message, deserializer, &options).map_err(|error| {
        let path = track.path().to_string();
        let mut field = if path.is_empty() || path == "." {
            String::new()
        } else {
            path
        };
        // An unknown field is named by its own path, not its parent's.
        let message = error.to_string();
        if let Some(unknown) = message
            .strip_prefix("unrecognized field name '")
            .and_then(|rest| rest.split('\'').next())
        {
            field = if field.is_empty() {
                unknown.to_owned()
            } else {
                format!("{field}.{unknown}")
            };
        }
        if field.is_empty() {
            field = "body".to_owned();
        }
        Problem::invalid(&field, message)
    })
}

/// Well-known message types whose JSON form is a single string.
pub fn is_string_like(message: &MessageDescriptor) -> bool {
    matches!(
        message.full_name(),
        "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask"
    )
}

/// Fields a query parameter or path variable may set: scalars, enums,
/// repeated scalars and the well-known types written as one string.
fn is_scalar_leaf(field: &FieldDescriptor) -> bool {
    if field.is_map() {
        return false;
    }
    match field.kind() {
        Kind::Message(message) => is_string_like(&message) && !field.is_list(),
        _ => true,
    }
}

/// One query or path value as the JSON the mapping expects for the field.
fn scalar(name: &str, field: &FieldDescriptor, raw: &str) -> Result<Value, Problem> {
    let number = |what: &str| Problem::invalid(name, format!("must be {what}"));
    Ok(match field.kind() {
        Kind::Bool => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(number("true or false")),
        },
        Kind::Int32
        | Kind::Sint32
        | Kind::Sfixed32
        | Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64 => Value::from(raw.parse::<i64>().map_err(|_| number("an integer"))?),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Value::from(
            raw.parse::<u64>()
                .map_err(|_| number("a non-negative integer"))?,
        ),
        Kind::Float | Kind::Double => {
            let parsed = raw.parse::<f64>().ok().filter(|n| n.is_finite());
            Value::from(parsed.ok_or_else(|| number("a number"))?)
        }
        Kind::Enum(enumeration) => Value::String(enum_name(&enumeration, raw)),
        _ => Value::String(raw.to_owned()),
    })
}

/// An enum value in a path or query: its full name (`ENTITY_CONTACT`) or,
/// for readable URLs, the name without the type's prefix in any case
/// (`contact`). Bodies use the full names only.
fn enum_name(enumeration: &prost_reflect::EnumDescriptor, raw: &str) -> String {
    let prefix = enumeration
        .values()
        .find(|v| v.number() == 0)
        .and_then(|v| v.name().strip_suffix("UNSPECIFIED").map(str::to_owned))
        .unwrap_or_default();
    let upper = raw.trim().to_ascii_uppercase();
    [upper.clone(), format!("{prefix}{upper}")]
        .into_iter()
        .find(|name| enumeration.get_value_by_name(name).is_some())
        .unwrap_or_else(|| raw.to_owned())
}

/// Puts `value` at the dotted `path` of `root`, creating objects on the way;
/// a repeated field collects every value given.
fn set_at(root: &mut Map<String, Value>, path: &str, value: Value, repeated: bool) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut current = root;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        current = next;
    }
    if repeated {
        match current
            .entry(last.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(items) => items.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else {
        current.insert(last.to_owned(), value);
    }
}

/// The JSON of a response message.
pub fn encode(message: &DynamicMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::new(&mut out);
    // Serializing into memory cannot fail for a decoded message.
    let _ = message.serialize_with_options(&mut serializer, &SERIALIZE);
    out
}

/// The descriptors of every contract, decoded once.
pub fn pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::LazyLock<prost_reflect::DescriptorPool> =
        std::sync::LazyLock::new(|| {
            prost_reflect::DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET)
                .expect("the descriptor set compiled into crm-proto decodes")
        });
    &POOL
}

/// The domains the contracts declare services for (`customers`, `sales`,
/// ...), from their packages `crm.<domain>.v1`.
pub fn domains() -> Vec<String> {
    let mut domains: Vec<String> = pool()
        .services()
        .filter_map(|service| super::binding::domain_of(service.package_name()).map(str::to_owned))
        .collect();
    domains.sort();
    domains.dedup();
    domains
}

/// A generated message as the same JSON the transcoded routes send, for
/// the hand-written ones (360 views, webhooks): `type_name` is its full
/// proto name, `crm.customers.v1.Contact`.
pub fn json_of<M: prost::Message>(type_name: &str, message: &M) -> Value {
    json_of_bytes(type_name, &message.encode_to_vec())
}

/// Like [`json_of`], from the encoded message.
pub fn json_of_bytes(type_name: &str, bytes: &[u8]) -> Value {
    let Some(descriptor) = pool().get_message_by_name(type_name) else {
        return Value::Null;
    };
    DynamicMessage::decode(descriptor, bytes)
        .ok()
        .and_then(|dynamic| {
            dynamic
                .serialize_with_options(serde_json::value::Serializer, &SERIALIZE)
                .ok()
        })
        .unwrap_or(Value::Null)
}
