//! The OpenAPI 3.1 paths and schemas of the transcoded routes, generated
//! from the same descriptors: paths from the HTTP rules, schemas from the
//! messages, descriptions from the proto comments, `required` and
//! `readOnly` from `google.api.field_behavior`. Merged with the
//! hand-written routes' utoipa document by `http::docs`.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    Value as Reflected,
};
use serde_json::{json, Map, Value};

use super::binding::{field_at, Binding, BodyTarget};

/// `google.api.FieldBehavior` values used here.
const REQUIRED: i32 = 2;
const OUTPUT_ONLY: i32 = 3;

/// Paths and component schemas for `bindings`.
pub struct Generated {
    pub paths: Map<String, Value>,
    pub schemas: Map<String, Value>,
}

/// One key per path shape: operations on `/v1/contacts/{id}` and
/// `/v1/contacts/{contact_id}` share the first name seen.
pub fn generate(pool: &DescriptorPool, bindings: &[Binding]) -> Generated {
    let mut generator = Generator {
        comments: comments(pool),
        behavior: pool.get_extension_by_name("google.api.field_behavior"),
        schemas: BTreeMap::new(),
    };
    let mut paths = Map::new();
    for binding in bindings {
        let operation = generator.operation(binding);
        let mut single = json!({ binding.verb.as_str().to_ascii_lowercase(): operation });
        insert_path(&mut paths, &openapi_path(&binding.template), &mut single);
    }
    Generated {
        paths,
        schemas: generator.schemas.into_iter().collect(),
    }
}

struct Generator {
    /// Leading comments by (file name, source path).
    comments: HashMap<(String, Vec<i32>), String>,
    behavior: Option<ExtensionDescriptor>,
    schemas: BTreeMap<String, Value>,
}

fn comments(pool: &DescriptorPool) -> HashMap<(String, Vec<i32>), String> {
    let mut out = HashMap::new();
    for file in pool.files() {
        let Some(info) = &file.file_descriptor_proto().source_code_info else {
            continue;
        };
        for location in &info.location {
            let text = location.leading_comments().trim();
            if !text.is_empty() {
                let text = text.lines().map(str::trim).collect::<Vec<_>>().join("\n");
                out.insert((file.name().to_owned(), location.path.clone()), text);
            }
        }
    }
    out
}

impl Generator {
    fn comment(&self, file: &str, path: &[i32]) -> Option<&str> {
        self.comments
            .get(&(file.to_owned(), path.to_vec()))
            .map(String::as_str)
    }

    fn behaviors(&self, field: &FieldDescriptor) -> Vec<i32> {
        let Some(extension) = &self.behavior else {
            return Vec::new();
        };
        let options = field.options();
        if !options.has_extension(extension) {
            return Vec::new();
        }
        match options.get_extension(extension).as_ref() {
            Reflected::List(values) => values
                .iter()
                .filter_map(Reflected::as_enum_number)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn operation(&mut self, binding: &Binding) -> Value {
        let method = &binding.method;
        let service = method.parent_service();
        let comment = self
            .comment(method.parent_file().name(), method.path())
            .unwrap_or_default()
            .to_owned();
        let summary = comment
            .split(". ")
            .next()
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('.').to_owned())
            .unwrap_or_else(|| method.name().to_owned());
        let mut parameters: Vec<Value> = binding
            .variables
            .iter()
            .map(|variable| {
                let field = field_at(&method.input(), variable);
                json!({
                    "name": variable.replace('.', "_"),
                    "in": "path",
                    "required": true,
                    "schema": field.map(|f| self.scalar_schema(&f)).unwrap_or_else(|| json!({"type": "string"})),
                })
            })
            .collect();
        let input = method.input();
        if binding.body != BodyTarget::Whole {
            let skip = match &binding.body {
                BodyTarget::Field(field) => Some(field.as_str()),
                _ => None,
            };
            let mut query = Vec::new();
            self.query_parameters(&input, "", skip, &binding.variables, 0, &mut query);
            parameters.extend(query);
        }
        let mut operation = json!({
            "operationId": binding.operation_id(),
            "summary": summary,
            "tags": [service.name().trim_end_matches("Service")],
            "security": [{"bearer": []}],
            "parameters": parameters,
        });
        if !comment.is_empty() {
            operation["description"] = Value::String(comment);
        }
        let body_schema = match &binding.body {
            BodyTarget::None => None,
            BodyTarget::Whole => Some(self.reference(&input)),
            BodyTarget::Field(field) => input
                .get_field_by_name(field)
                .map(|f| self.field_schema(&f)),
        };
        if let Some(schema) = body_schema {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        let mut responses = Map::new();
        if binding.is_delete() {
            responses.insert("204".into(), json!({"description": "deleted"}));
        } else {
            let schema = self.reference(&binding.response_message());
            let mut ok = json!({
                "description": if binding.is_create() { "created" } else { "OK" },
                "content": {"application/json": {"schema": schema}},
            });
            let resource = binding.response_message();
            if resource.get_field_by_name("audit").is_some()
                || resource.get_field_by_name("version").is_some()
            {
                insert_header(
                    &mut ok,
                    "ETag",
                    "the record's version; send it back in If-Match",
                );
            }
            if binding.is_create() {
                insert_header(&mut ok, "Location", "where the created record is");
            }
            responses.insert(if binding.is_create() { "201" } else { "200" }.into(), ok);
        }
        for (code, description) in [
            ("400", "invalid input; `errors` names the fields"),
            ("401", "missing, expired or forged token"),
            ("403", "the caller's role or scopes do not allow this"),
            ("404", "no such record visible to the caller"),
            (
                "409",
                "the record already exists or is in a state that refuses this",
            ),
            ("412", "If-Match names a version that is no longer current"),
            ("413", "body larger than 1 MiB"),
            ("429", "rate limit of the tenant reached; see Retry-After"),
            (
                "503",
                "the gateway or a service is overloaded or down; retry later",
            ),
        ] {
            responses.insert(
                code.into(),
                json!({
                    "description": description,
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDocument"}}},
                }),
            );
        }
        operation["responses"] = Value::Object(responses);
        operation
    }

    /// Query parameters for the scalar leaves of `message` (dotted names),
    /// skipping the body field, path variables, maps, repeated messages and
    /// recursion past a few levels.
    fn query_parameters(
        &mut self,
        message: &MessageDescriptor,
        prefix: &str,
        skip: Option<&str>,
        variables: &[String],
        depth: usize,
        out: &mut Vec<Value>,
    ) {
        for field in message.fields() {
            let name = format!("{prefix}{}", field.name());
            if Some(name.as_str()) == skip || variables.contains(&name) || field.is_map() {
                continue;
            }
            let behaviors = self.behaviors(&field);
            if behaviors.contains(&OUTPUT_ONLY) {
                continue;
            }
            match field.kind() {
                Kind::Message(inner) if inner.full_name() == super::message::PAGE_REQUEST => {
                    // Paging parameters sit at the top level: `page_size`.
                    self.query_parameters(&inner, prefix, skip, variables, depth + 1, out);
                }
                Kind::Message(inner) if !super::message::is_string_like(&inner) => {
                    if !field.is_list() && depth < 2 {
                        self.query_parameters(
                            &inner,
                            &format!("{name}."),
                            skip,
                            variables,
                            depth + 1,
                            out,
                        );
                    }
                }
                _ => {
                    let mut parameter = json!({
                        "name": name,
                        "in": "query",
                        "required": behaviors.contains(&REQUIRED),
                        "schema": self.field_schema(&field),
                    });
                    if let Some(text) = self.comment(field.parent_file().name(), field.path()) {
                        parameter["description"] = Value::String(text.to_owned());
                    }
                    if field.is_list() {
                        parameter["explode"] = Value::Bool(true);
                    }
                    out.push(parameter);
                }
            }
        }
    }

    /// `$ref` to the message's schema, generating it (and what it uses) once.
    fn reference(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.schemas.contains_key(&name) {
            // Placeholder first: recursive messages refer to themselves.
            self.schemas.insert(name.clone(), Value::Null);
            let schema = self.message_schema(message);
            self.schemas.insert(name.clone(), schema);
        }
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn message_schema(&mut self, message: &MessageDescriptor) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            let mut schema = self.field_schema(&field);
            let behaviors = self.behaviors(&field);
            if let Some(text) = self.comment(field.parent_file().name(), field.path()) {
                schema = with_description(schema, text);
            }
            if behaviors.contains(&OUTPUT_ONLY) {
                schema = with_key(schema, "readOnly", Value::Bool(true));
            }
            if behaviors.contains(&REQUIRED) {
                required.push(Value::String(field.name().to_owned()));
            }
            properties.insert(field.name().to_owned(), schema);
        }
        let mut schema = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        if !required.is_empty() {
            schema["required"] = Value::Array(required);
        }
        if let Some(text) = self.comment(message.parent_file().name(), message.path()) {
            schema["description"] = Value::String(text.to_owned());
        }
        schema
    }

    fn field_schema(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map() {
            let Kind::Message(entry) = field.kind() else {
                return json!({"type": "object"});
            };
            let value = entry.map_entry_value_field();
            return json!({"type": "object", "additionalProperties": self.field_schema(&value)});
        }
        let item = match field.kind() {
            Kind::Message(message) => self.reference(&message),
            _ => self.scalar_schema(field),
        };
        if field.is_list() {
            json!({"type": "array", "items": item})
        } else {
            item
        }
    }

    fn scalar_schema(&mut self, field: &FieldDescriptor) -> Value {
        match field.kind() {
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "integer", "format": "int64"})
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({"type": "integer", "format": "int32", "minimum": 0})
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({"type": "integer", "format": "int64", "minimum": 0})
            }
            Kind::Float => json!({"type": "number", "format": "float"}),
            Kind::Double => json!({"type": "number", "format": "double"}),
            Kind::Enum(enumeration) => json!({
                "type": "string",
                "enum": enumeration.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
            }),
            Kind::Message(message) => self.reference(&message),
        }
    }
}

/// Adds the operations of `item` at `path`, or at the path of the same
/// shape already in `paths` with its variables renamed to match.
pub fn insert_path(paths: &mut Map<String, Value>, path: &str, item: &mut Value) {
    let shape = path_shape(path);
    let key = paths
        .keys()
        .find(|existing| path_shape(existing) == shape)
        .cloned()
        .unwrap_or_else(|| path.to_owned());
    if key != path {
        rename_path_variables(item, &path_variables(path), &path_variables(&key));
    }
    let target = paths
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if let (Value::Object(target), Value::Object(item)) = (target, item) {
        target.extend(std::mem::take(item));
    }
}

/// The template as an OpenAPI path: `{activity.id}` -> `{activity_id}`
/// (tools take a dot in a variable name for an expression).
pub fn openapi_path(template: &str) -> String {
    template.replace('.', "_")
}

/// A path with its variables blanked, `/v1/contacts/{}`: OpenAPI holds one
/// path per shape, whatever its variables are called.
pub fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The variable names of a path, in order.
pub fn path_variables(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

/// Renames the path parameters of every operation of `item` from `from`
/// to `to` (position by position), so it can join a path of the same shape.
pub fn rename_path_variables(item: &mut Value, from: &[String], to: &[String]) {
    for operation in item
        .as_object_mut()
        .into_iter()
        .flat_map(|ops| ops.values_mut())
    {
        for parameter in operation["parameters"].as_array_mut().into_iter().flatten() {
            if parameter["in"] != "path" {
                continue;
            }
            let position = from
                .iter()
                .position(|name| parameter["name"] == name.as_str());
            if let Some(new) = position.and_then(|i| to.get(i)) {
                parameter["name"] = Value::String(new.clone());
            }
        }
    }
}

/// Message types whose JSON form is not an object of their fields.
fn well_known(message: &MessageDescriptor) -> Option<Value> {
    Some(match message.full_name() {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "comma-separated lowerCamelCase field paths"})
        }
        "google.protobuf.Struct" => json!({"type": "object"}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Empty" => json!({"type": "object", "additionalProperties": false}),
        _ => return None,
    })
}

/// A description beside a schema; a `$ref` is wrapped so its siblings count.
fn with_description(schema: Value, text: &str) -> Value {
    with_key(schema, "description", Value::String(text.to_owned()))
}

fn with_key(schema: Value, key: &str, value: Value) -> Value {
    match schema {
        Value::Object(mut object) if !object.contains_key("$ref") => {
            object.insert(key.to_owned(), value);
            Value::Object(object)
        }
        other => json!({"allOf": [other], key: value}),
    }
}

fn insert_header(response: &mut Value, name: &str, description: &str) {
    if let Value::Object(object) = response {
        let headers = object.entry("headers").or_insert_with(|| json!({}));
        if let Value::Object(headers) = headers {
            headers.insert(
                name.to_owned(),
                json!({"description": description, "schema": {"type": "string"}}),
            );
        }
    }
}
