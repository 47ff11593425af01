//! Custom fields: the definition model every service with custom fields
//! shares (customers' accounts and contacts, the service desk's tickets),
//! and the check every write of a record's values goes through.
//!
//! Values arrive as `google.protobuf.Value` and are stored as JSON: numbers
//! as JSON numbers, booleans as booleans, multi-selects as arrays, and
//! everything else (text, exact decimals, dates, selects, URLs, e-mails) as
//! strings in a normalised form, so filters can compare them.

use std::collections::{BTreeMap, HashMap};

use crm_proto::crm::customers::v1::{FieldDefinition, FieldType};
use prost_types::value::Kind;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::contact_point::Email;
use crate::error::Violations;

/// Options a select field may have.
pub const MAX_OPTIONS: usize = 500;

/// Checks a definition's key, label, type and options (under `field.`);
/// the entity it is for is the owning service's to check.
pub fn check_definition(field: &mut FieldDefinition, violations: &mut Violations) {
    let key_ok = field.key.len() <= 63
        && field.key.starts_with(|c: char| c.is_ascii_lowercase())
        && field
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key_ok {
        violations.add(
            "field.key",
            "must be snake_case: a lower-case letter, then letters, digits or _ (at most 63)",
        );
    }
    field.label = field.label.trim().to_owned();
    if field.label.is_empty() || field.label.chars().count() > 100 {
        violations.add("field.label", "must be 1 to 100 characters");
    }
    let select = matches!(
        field.r#type(),
        FieldType::SingleSelect | FieldType::MultiSelect
    );
    if field.r#type() == FieldType::Unspecified {
        violations.add("field.type", "is required");
    }
    if select {
        field
            .options
            .iter_mut()
            .for_each(|o| *o = o.trim().to_owned());
        let mut seen = std::collections::HashSet::new();
        if field.options.is_empty() {
            violations.add("field.options", "a select field needs at least one option");
        } else if field.options.len() > MAX_OPTIONS
            || field.options.iter().any(|o| o.chars().count() > 200)
        {
            violations.add(
                "field.options",
                format!("at most {MAX_OPTIONS} options of at most 200 characters"),
            );
        } else if field
            .options
            .iter()
            .any(|o| o.is_empty() || !seen.insert(o.clone()))
        {
            violations.add("field.options", "options must be non-empty and distinct");
        }
    } else if !field.options.is_empty() {
        violations.add("field.options", "only select fields have options");
    }
}

/// The custom field definitions of one tenant and entity.
#[derive(Debug, Default, Clone)]
pub struct FieldCatalog {
    fields: HashMap<String, FieldDefinition>,
}

impl FieldCatalog {
    pub fn new(definitions: Vec<FieldDefinition>) -> Self {
        Self {
            fields: definitions
                .into_iter()
                .map(|d| (d.key.clone(), d))
                .collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&FieldDefinition> {
        self.fields.get(key)
    }

    /// Validates `values` (the record's complete custom values after the
    /// write) and returns them as stored JSON. `path` names the map in the
    /// request, e.g. `contact.custom_fields`.
    pub fn check(
        &self,
        values: &HashMap<String, prost_types::Value>,
        path: &str,
        violations: &mut Violations,
    ) -> serde_json::Map<String, Json> {
        self.check_values(values, path, true, violations)
    }

    /// [`Self::check`], with required fields enforced or not (a record
    /// made by a machine from what a person sent: a ticket from a mail).
    pub fn check_values(
        &self,
        values: &HashMap<String, prost_types::Value>,
        path: &str,
        enforce_required: bool,
        violations: &mut Violations,
    ) -> serde_json::Map<String, Json> {
        let mut stored = serde_json::Map::new();
        // Sorted so error lists come out in a stable order.
        let sorted: BTreeMap<_, _> = values.iter().collect();
        for (key, value) in sorted {
            let field_path = format!("{path}.{key}");
            let Some(definition) = self.fields.get(key.as_str()) else {
                violations.add(field_path, "is not a defined custom field");
                continue;
            };
            match value.kind.as_ref() {
                None | Some(Kind::NullValue(_)) => {} // unset
                Some(kind) => match convert(definition, kind) {
                    Ok(json) => {
                        stored.insert(key.clone(), json);
                    }
                    Err(reason) => violations.add(field_path, reason),
                },
            }
        }
        let mut required: Vec<&FieldDefinition> = self
            .fields
            .values()
            .filter(|d| d.required && enforce_required)
            .collect();
        required.sort_by(|a, b| a.key.cmp(&b.key));
        for definition in required {
            let given = values
                .get(&definition.key)
                .is_some_and(|v| !matches!(v.kind, None | Some(Kind::NullValue(_))));
            if !given {
                violations.add(format!("{path}.{}", definition.key), "is required");
            }
        }
        stored
    }
}

fn convert(definition: &FieldDefinition, kind: &Kind) -> Result<Json, String> {
    let options = &definition.options;
    match (definition.r#type(), kind) {
        (FieldType::Text, Kind::StringValue(s)) if s.chars().count() <= 10_000 => {
            Ok(Json::String(s.trim().to_owned()))
        }
        (FieldType::Text, Kind::StringValue(_)) => Err("is longer than 10000 characters".into()),
        (FieldType::Number, Kind::NumberValue(n)) if n.is_finite() => {
            serde_json::Number::from_f64(*n)
                .map(Json::Number)
                .ok_or_else(|| "is not a finite number".into())
        }
        (FieldType::Decimal, Kind::StringValue(s)) => crate::input::plain_decimal(s.trim())
            .ok_or(())
            .map(|d: Decimal| Json::String(d.normalize().to_string()))
            .map_err(|_| "must be a decimal string such as \"1234.50\"".into()),
        (FieldType::Date, Kind::StringValue(s)) => {
            chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| Json::String(d.to_string()))
                .map_err(|_| "must be a date as YYYY-MM-DD".into())
        }
        (FieldType::Bool, Kind::BoolValue(b)) => Ok(Json::Bool(*b)),
        (FieldType::SingleSelect, Kind::StringValue(s)) if options.contains(s) => {
            Ok(Json::String(s.clone()))
        }
        (FieldType::SingleSelect, Kind::StringValue(s)) => Err(format!(
            "{s:?} is not one of the options {}",
            options.join(", ")
        )),
        (FieldType::MultiSelect, Kind::ListValue(list)) => {
            let mut chosen = Vec::new();
            for item in &list.values {
                match &item.kind {
                    Some(Kind::StringValue(s)) if options.contains(s) => {
                        if !chosen.contains(s) {
                            chosen.push(s.clone());
                        }
                    }
                    _ => {
                        return Err(format!(
                            "every item must be one of the options {}",
                            options.join(", ")
                        ))
                    }
                }
            }
            Ok(Json::Array(chosen.into_iter().map(Json::String).collect()))
        }
        (FieldType::Url, Kind::StringValue(s)) => {
            let s = s.trim();
            let host = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .unwrap_or("");
            if host.is_empty() || host.starts_with('/') || s.chars().any(char::is_whitespace) {
                Err("must be an http(s):// URL".into())
            } else {
                Ok(Json::String(s.to_owned()))
            }
        }
        (FieldType::Email, Kind::StringValue(s)) => Email::parse(s)
            .map(|e| Json::String(e.as_str().to_owned()))
            .map_err(|reason| reason.to_owned()),
        (field_type, _) => Err(format!(
            "has the wrong type: expected {}",
            type_name(field_type)
        )),
    }
}

fn type_name(field_type: FieldType) -> &'static str {
    match field_type {
        FieldType::Text | FieldType::Url | FieldType::Email | FieldType::SingleSelect => "a string",
        FieldType::Number => "a number",
        FieldType::Decimal => "a decimal string",
        FieldType::Date => "a date string (YYYY-MM-DD)",
        FieldType::Bool => "true or false",
        FieldType::MultiSelect => "a list of strings",
        FieldType::Unspecified => "a value",
    }
}

/// Stored JSON back to protobuf values.
pub fn to_proto_values(stored: &Json) -> HashMap<String, prost_types::Value> {
    let Json::Object(map) = stored else {
        return HashMap::new();
    };
    map.iter()
        .map(|(k, v)| (k.clone(), json_to_value(v)))
        .collect()
}

pub use crate::values::json_to_value;

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::customers::v1::Entity;

    fn definition(
        key: &str,
        field_type: FieldType,
        required: bool,
        options: &[&str],
    ) -> FieldDefinition {
        FieldDefinition {
            entity: Entity::Contact as i32,
            key: key.into(),
            label: key.into(),
            r#type: field_type as i32,
            required,
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn string(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    #[test]
    fn values_are_checked_against_their_definitions() {
        let catalog = FieldCatalog::new(vec![
            definition("tier", FieldType::SingleSelect, true, &["gold", "silver"]),
            definition("credit", FieldType::Decimal, false, &[]),
            definition("renewal", FieldType::Date, false, &[]),
        ]);
        let mut violations = Violations::new();
        let values = HashMap::from([
            ("tier".to_owned(), string("gold")),
            ("credit".to_owned(), string("1200.500")),
            ("renewal".to_owned(), string("2027-01-31")),
        ]);
        let stored = catalog.check(&values, "contact.custom_fields", &mut violations);
        assert!(violations.is_empty());
        assert_eq!(stored["credit"], Json::String("1200.5".into()));

        let mut violations = Violations::new();
        let values = HashMap::from([
            (
                "credit".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::NumberValue(1.5)),
                },
            ),
            ("renewal".to_owned(), string("31/01/2027")),
            ("colour".to_owned(), string("red")),
        ]);
        catalog.check(&values, "contact.custom_fields", &mut violations);
        let Err(crate::Error::InvalidArgument(list)) = violations.into_result() else {
            panic!("accepted")
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "contact.custom_fields.colour",
                "contact.custom_fields.credit",
                "contact.custom_fields.renewal",
                "contact.custom_fields.tier"
            ]
        );
    }

    #[test]
    fn definitions_need_snake_case_keys_and_options_for_selects() {
        let mut bad = definition("Tier Level", FieldType::SingleSelect, false, &[]);
        let mut violations = Violations::new();
        check_definition(&mut bad, &mut violations);
        let Err(crate::Error::InvalidArgument(list)) = violations.into_result() else {
            panic!("accepted")
        };
        let fields: Vec<_> = list.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["field.key", "field.options"]);
    }
}
