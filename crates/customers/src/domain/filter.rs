//! Filters over contacts and accounts: the request's `Filter` tree checked
//! against the fields that exist, with values parsed to their types. The
//! store turns a checked [`FilterExpr`] into SQL with bound parameters only.

use chrono::{DateTime, Utc};
use crm_proto::crm::customers::v1::{Condition, FieldType, Filter, LifecycleStage, Operator};
use kit::Error;
use prost_types::value::Kind;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::custom_fields::FieldCatalog;
use super::lifecycle::parse_stage;

/// How a column is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Case-insensitive text.
    Text,
    Uuid,
    /// Integer enum (lifecycle stage, size band).
    Enum,
    Timestamp,
    /// `text[]`: tags.
    TextArray,
    /// `text[]` of normalised e-mail addresses or phone numbers, compared
    /// through `contact_points` (an index lookup under row-level security,
    /// where `&&` on the array could use none).
    ContactPoints,
}

/// A standard field: its name in requests and its SQL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub sql: &'static str,
    pub kind: ColumnKind,
    /// A stored lower-case copy of a text column, with an index of its own:
    /// under row-level security `lower(column) = $1` cannot use an index
    /// (`lower` is not leakproof), a plain column can.
    pub key: Option<&'static str>,
}

const fn column(name: &'static str, sql: &'static str, kind: ColumnKind) -> Column {
    Column {
        name,
        sql,
        kind,
        key: None,
    }
}

/// A text column compared through its stored lower-case key.
const fn keyed(name: &'static str, sql: &'static str, key: &'static str) -> Column {
    Column {
        name,
        sql,
        kind: ColumnKind::Text,
        key: Some(key),
    }
}

pub const CONTACT_COLUMNS: &[Column] = &[
    column("id", "id", ColumnKind::Uuid),
    column("first_name", "first_name", ColumnKind::Text),
    keyed("last_name", "last_name", "last_name_key"),
    column("title", "title", ColumnKind::Text),
    column("language", "language", ColumnKind::Text),
    column("source", "source", ColumnKind::Text),
    column("country", "(address->>'country')", ColumnKind::Text),
    column("city", "(address->>'city')", ColumnKind::Text),
    column("account_id", "account_id", ColumnKind::Uuid),
    column("owner_id", "owner_id", ColumnKind::Uuid),
    column("team_id", "team_id", ColumnKind::Uuid),
    column("lifecycle_stage", "lifecycle_stage", ColumnKind::Enum),
    column("created_at", "created_at", ColumnKind::Timestamp),
    column("updated_at", "updated_at", ColumnKind::Timestamp),
    column("tags", "tags", ColumnKind::TextArray),
    column("email", "email_keys", ColumnKind::ContactPoints),
    column("phone", "phone_keys", ColumnKind::ContactPoints),
];

pub const ACCOUNT_COLUMNS: &[Column] = &[
    column("id", "id", ColumnKind::Uuid),
    keyed("name", "name", "name_key"),
    column("domain", "domain", ColumnKind::Text),
    column("industry", "industry", ColumnKind::Text),
    column("credit_rating", "credit_rating", ColumnKind::Text),
    column("source", "source", ColumnKind::Text),
    column("country", "(address->>'country')", ColumnKind::Text),
    column("city", "(address->>'city')", ColumnKind::Text),
    column("owner_id", "owner_id", ColumnKind::Uuid),
    column("team_id", "team_id", ColumnKind::Uuid),
    column("parent_account_id", "parent_id", ColumnKind::Uuid),
    column("lifecycle_stage", "lifecycle_stage", ColumnKind::Enum),
    column("size_band", "size_band", ColumnKind::Enum),
    column("created_at", "created_at", ColumnKind::Timestamp),
    column("updated_at", "updated_at", ColumnKind::Timestamp),
    column("tags", "tags", ColumnKind::TextArray),
];

/// A typed operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    None,
    Text(String),
    Number(Decimal),
    Uuid(Uuid),
    Int(i32),
    Timestamp(DateTime<Utc>),
    Bool(bool),
    List(Vec<Operand>),
}

/// What a condition compares.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Column(Column),
    Custom { key: String, field_type: FieldType },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub target: Target,
    pub op: Operator,
    pub operand: Operand,
}

/// A checked filter tree.
pub type FilterExpr = kit::filter::FilterTree<Comparison>;

/// Checks `filter` (absent = match everything) against `columns` and the
/// tenant's custom fields. `path` names the filter in the request.
pub fn check(
    filter: Option<&Filter>,
    columns: &'static [Column],
    catalog: &FieldCatalog,
    path: &str,
) -> Result<Option<FilterExpr>, Error> {
    kit::filter::check(filter, path, &mut |condition, at| {
        check_condition(condition, columns, catalog, at)
    })
}

fn check_condition(
    condition: &Condition,
    columns: &'static [Column],
    catalog: &FieldCatalog,
    path: &str,
) -> Result<Comparison, Error> {
    let target = if let Some(key) = condition.field.strip_prefix("custom.") {
        let definition = catalog.get(key).ok_or_else(|| {
            Error::invalid(
                format!("{path}.field"),
                format!("custom field {key:?} is not defined"),
            )
        })?;
        Target::Custom {
            key: key.to_owned(),
            field_type: definition.r#type(),
        }
    } else {
        let column = columns
            .iter()
            .find(|c| c.name == condition.field)
            .ok_or_else(|| {
                let known: Vec<_> = columns.iter().map(|c| c.name).collect();
                Error::invalid(
                    format!("{path}.field"),
                    format!(
                        "unknown field {:?}; use one of {} or custom.<key>",
                        condition.field,
                        known.join(", ")
                    ),
                )
            })?;
        Target::Column(*column)
    };
    let op = condition.op();
    let value_path = format!("{path}.value");
    let operand = match op {
        Operator::Unspecified => return Err(Error::invalid(format!("{path}.op"), "is required")),
        Operator::IsSet | Operator::IsNotSet => Operand::None,
        Operator::In => {
            let Some(Kind::ListValue(list)) =
                condition.value.as_ref().and_then(|v| v.kind.as_ref())
            else {
                return Err(Error::invalid(value_path, "IN needs a list value"));
            };
            Operand::List(
                list.values
                    .iter()
                    .map(|v| operand(&target, v.kind.as_ref(), &value_path))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => operand(
            &target,
            condition.value.as_ref().and_then(|v| v.kind.as_ref()),
            &value_path,
        )?,
    };
    let text_only = matches!(op, Operator::Contains | Operator::StartsWith);
    let ordered = matches!(
        op,
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
    );
    let is_text = matches!(&target, Target::Column(c) if c.kind == ColumnKind::Text)
        || matches!(&target, Target::Custom { field_type, .. } if matches!(field_type, FieldType::Text | FieldType::Url | FieldType::Email));
    let is_ordered = match &target {
        Target::Column(c) => matches!(
            c.kind,
            ColumnKind::Timestamp | ColumnKind::Enum | ColumnKind::Text
        ),
        Target::Custom { field_type, .. } => {
            matches!(
                field_type,
                FieldType::Number | FieldType::Decimal | FieldType::Date | FieldType::Text
            )
        }
    };
    if text_only && !is_text {
        return Err(Error::invalid(
            format!("{path}.op"),
            "CONTAINS and STARTS_WITH work on text fields only",
        ));
    }
    if ordered && !is_ordered {
        return Err(Error::invalid(
            format!("{path}.op"),
            "this field cannot be compared with <, <=, >, >=",
        ));
    }
    Ok(Comparison {
        target,
        op,
        operand,
    })
}

fn operand(target: &Target, kind: Option<&Kind>, path: &str) -> Result<Operand, Error> {
    let wrong = |expected: &str| Error::invalid(path, format!("must be {expected}"));
    match target {
        Target::Column(column) => match (column.kind, kind) {
            (
                ColumnKind::Text | ColumnKind::TextArray | ColumnKind::ContactPoints,
                Some(Kind::StringValue(s)),
            ) => Ok(Operand::Text(s.clone())),
            (ColumnKind::Text | ColumnKind::TextArray | ColumnKind::ContactPoints, _) => {
                Err(wrong("a string"))
            }
            (ColumnKind::Uuid, Some(Kind::StringValue(s))) => Uuid::parse_str(s)
                .map(Operand::Uuid)
                .map_err(|_| wrong("an id (UUID)")),
            (ColumnKind::Uuid, _) => Err(wrong("an id (UUID) string")),
            (ColumnKind::Enum, Some(Kind::NumberValue(n))) if n.fract() == 0.0 => {
                Ok(Operand::Int(*n as i32))
            }
            (ColumnKind::Enum, Some(Kind::StringValue(s))) if column.name == "lifecycle_stage" => {
                parse_stage(s)
                    .map(|stage: LifecycleStage| Operand::Int(stage as i32))
                    .ok_or_else(|| wrong("a lifecycle stage such as \"customer\""))
            }
            (ColumnKind::Enum, _) => Err(wrong("an enum number or name")),
            (ColumnKind::Timestamp, Some(Kind::StringValue(s))) => DateTime::parse_from_rfc3339(s)
                .map(|t| Operand::Timestamp(t.with_timezone(&Utc)))
                .map_err(|_| wrong("an RFC 3339 timestamp")),
            (ColumnKind::Timestamp, _) => Err(wrong("an RFC 3339 timestamp string")),
        },
        Target::Custom { field_type, .. } => match (field_type, kind) {
            (FieldType::Number, Some(Kind::NumberValue(n))) => Decimal::try_from(*n)
                .map(Operand::Number)
                .map_err(|_| wrong("a finite number")),
            (FieldType::Number | FieldType::Decimal, Some(Kind::StringValue(s))) => s
                .trim()
                .parse()
                .map(Operand::Number)
                .map_err(|_| wrong("a number")),
            (FieldType::Bool, Some(Kind::BoolValue(b))) => Ok(Operand::Bool(*b)),
            (FieldType::Date, Some(Kind::StringValue(s))) => {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|d| Operand::Text(d.to_string()))
                    .map_err(|_| wrong("a date as YYYY-MM-DD"))
            }
            (_, Some(Kind::StringValue(s))) => Ok(Operand::Text(s.clone())),
            _ => Err(wrong("a value of the field's type")),
        },
    }
}

/// `filter` AND `field = value` for each pair: how list requests' shortcut
/// fields (`tag`, `owner_id`, ...) join a filter tree.
pub fn and_equals(
    filter: Option<&Filter>,
    equals: Vec<(&str, prost_types::value::Kind)>,
) -> Option<Filter> {
    use crm_proto::crm::customers::v1::{filter::Node, Condition, FilterGroup, Operator};
    let mut all: Vec<Filter> = filter.into_iter().cloned().collect();
    all.extend(equals.into_iter().map(|(field, value)| Filter {
        node: Some(Node::Condition(Condition {
            field: field.to_owned(),
            op: Operator::Eq as i32,
            value: Some(prost_types::Value { kind: Some(value) }),
        })),
    }));
    match all.len() {
        0 | 1 => all.pop(),
        _ => Some(Filter {
            node: Some(Node::All(FilterGroup { filters: all })),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::customers::v1::{filter, FilterGroup};

    fn condition(field: &str, op: Operator, value: Kind) -> Filter {
        Filter {
            node: Some(filter::Node::Condition(Condition {
                field: field.into(),
                op: op as i32,
                value: Some(prost_types::Value { kind: Some(value) }),
            })),
        }
    }

    #[test]
    fn checks_fields_and_value_types() {
        let catalog = FieldCatalog::default();
        let filter = Filter {
            node: Some(filter::Node::All(FilterGroup {
                filters: vec![
                    condition(
                        "lifecycle_stage",
                        Operator::Eq,
                        Kind::StringValue("customer".into()),
                    ),
                    condition("tags", Operator::Eq, Kind::StringValue("vip".into())),
                ],
            })),
        };
        let checked = check(Some(&filter), CONTACT_COLUMNS, &catalog, "filter")
            .unwrap()
            .unwrap();
        let kit::filter::FilterTree::All(children) = checked else {
            panic!("not an all group")
        };
        assert_eq!(children.len(), 2);

        let unknown = condition("shoe_size", Operator::Eq, Kind::StringValue("44".into()));
        let Err(Error::InvalidArgument(v)) =
            check(Some(&unknown), CONTACT_COLUMNS, &catalog, "filter")
        else {
            panic!("unknown field accepted")
        };
        assert_eq!(v[0].field, "filter.condition.field");

        let bad_time = condition(
            "created_at",
            Operator::Gt,
            Kind::StringValue("yesterday".into()),
        );
        let Err(Error::InvalidArgument(v)) =
            check(Some(&bad_time), CONTACT_COLUMNS, &catalog, "filter")
        else {
            panic!("bad timestamp accepted")
        };
        assert_eq!(v[0].field, "filter.condition.value");
    }
}
