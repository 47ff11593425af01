//! The report builder's rules, without I/O: the datasets and their fields
//! (a closed set: every SQL identifier a report uses comes from here, never
//! from the request), and a definition checked against them into a
//! [`Plan`] the store compiles to SQL with every value bound.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::customers::v1::{Condition, Operator};

use crm_proto::crm::reporting::v1::{Aggregate, DateBucket, ReportDefinition};
use kit::error::Violations;
use kit::filter::FilterTree;
use kit::Error;
use prost_types::value::Kind;
use rust_decimal::Decimal;
use uuid::Uuid;

/// What a field holds, which decides what may be done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    Text,
    /// A source enum stored as its number; named by its values.
    Enum(EnumType),
    Number,
    /// Exact money in the row's `currency`.
    Amount,
    Time,
    Date,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::Text => "text",
            FieldType::Enum(_) => "enum",
            FieldType::Number => "number",
            FieldType::Amount => "amount",
            FieldType::Time => "time",
            FieldType::Date => "date",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    /// The column (or expression over the dataset's table).
    pub sql: &'static str,
    pub r#type: FieldType,
}

const fn field(name: &'static str, r#type: FieldType) -> Field {
    Field {
        name,
        sql: name,
        r#type,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    pub name: &'static str,
    pub table: &'static str,
    pub fields: &'static [Field],
    /// Rows carry `owner_id` and `team_id`: the caller's visibility
    /// applies. Otherwise the rows are the tenant's to read (campaign
    /// members, as in marketing).
    pub scoped: bool,
    /// The domain whose events fill it ("as of").
    pub domain: &'static str,
}

impl Dataset {
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Whether rows carry amounts (and a `currency` column).
    pub fn has_amounts(&self) -> bool {
        self.fields.iter().any(|f| f.r#type == FieldType::Amount)
    }
}

/// A source enum a field holds: its values are named as the proto names
/// them, without the type's prefix, in lower case (`web_form`).
#[derive(Debug, Clone, Copy)]
pub struct EnumType {
    pub prefix: &'static str,
    pub name_of: fn(i32) -> Option<&'static str>,
}

impl PartialEq for EnumType {
    fn eq(&self, other: &Self) -> bool {
        self.prefix == other.prefix
    }
}

impl Eq for EnumType {}

impl EnumType {
    /// Every value: (key, number).
    pub fn values(&self) -> Vec<(String, i16)> {
        (0..64)
            .filter_map(|n| {
                let name = (self.name_of)(n)?;
                Some((super::key_of(Some(name), self.prefix), n as i16))
            })
            .collect()
    }

    pub fn key(&self, n: i32) -> String {
        super::key_of((self.name_of)(n), self.prefix)
    }

    pub fn parse(&self, key: &str) -> Option<i16> {
        let key = key.trim().to_ascii_lowercase();
        self.values()
            .into_iter()
            .find(|(name, _)| *name == key)
            .map(|(_, n)| n)
    }
}

/// The [`EnumType`] of a generated proto enum.
macro_rules! enum_type {
    ($name:ident, $enum:ty, $prefix:literal) => {
        const $name: EnumType = EnumType {
            prefix: $prefix,
            name_of: |n| <$enum>::try_from(n).ok().map(|e| e.as_str_name()),
        };
    };
}

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::marketing::v1 as marketing;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::servicedesk::v1 as desk;

enum_type!(DEAL_STATUS, sales::OpportunityStatus, "OPPORTUNITY_STATUS_");
enum_type!(LEAD_SOURCE, sales::LeadSource, "LEAD_SOURCE_");
enum_type!(LIFECYCLE, customers::LifecycleStage, "LIFECYCLE_STAGE_");
enum_type!(ACTIVITY_KIND, customers::ActivityKind, "ACTIVITY_KIND_");
enum_type!(TICKET_TYPE, desk::TicketType, "TICKET_TYPE_");
enum_type!(TICKET_CHANNEL, desk::TicketChannel, "TICKET_CHANNEL_");
enum_type!(TICKET_STATUS, desk::TicketStatus, "TICKET_STATUS_");
enum_type!(PRIORITY, desk::TicketPriority, "TICKET_PRIORITY_");
enum_type!(MEMBER_STATUS, marketing::MemberStatus, "MEMBER_STATUS_");

use FieldType::*;

pub const DATASETS: &[Dataset] = &[
    Dataset {
        name: "deals",
        table: "deals",
        scoped: true,
        domain: "sales",
        fields: &[
            field("id", Id),
            field("pipeline_id", Id),
            field("stage_id", Id),
            field("account_id", Id),
            field("owner_id", Id),
            field("team_id", Id),
            field("campaign_id", Id),
            field("status", Enum(DEAL_STATUS)),
            field("amount", Amount),
            field("currency", Text),
            field("probability", Number),
            field("close_date", Date),
            field("lost_reason", Text),
            field("created_at", Time),
            field("closed_at", Time),
        ],
    },
    Dataset {
        name: "leads",
        table: "leads",
        scoped: true,
        domain: "sales",
        fields: &[
            field("id", Id),
            field("source", Enum(LEAD_SOURCE)),
            field("owner_id", Id),
            field("team_id", Id),
            field("campaign_id", Id),
            field("region", Text),
            field("created_at", Time),
            field("first_response_at", Time),
            field("converted_at", Time),
        ],
    },
    Dataset {
        name: "contacts",
        table: "contacts",
        scoped: true,
        domain: "customers",
        fields: &[
            field("id", Id),
            field("account_id", Id),
            field("owner_id", Id),
            field("team_id", Id),
            field("lifecycle_stage", Enum(LIFECYCLE)),
            field("country", Text),
            field("created_at", Time),
        ],
    },
    Dataset {
        name: "accounts",
        table: "accounts",
        scoped: true,
        domain: "customers",
        fields: &[
            field("id", Id),
            field("owner_id", Id),
            field("team_id", Id),
            Field {
                name: "lifecycle_stage",
                sql: "lifecycle",
                r#type: Enum(LIFECYCLE),
            },
            field("industry", Text),
            field("country", Text),
            field("region", Text),
            field("created_at", Time),
        ],
    },
    Dataset {
        name: "activities",
        table: "activities",
        scoped: true,
        domain: "customers",
        fields: &[
            field("id", Id),
            field("kind", Enum(ACTIVITY_KIND)),
            field("owner_id", Id),
            field("team_id", Id),
            field("account_id", Id),
            field("occurred_at", Time),
            field("completed_at", Time),
        ],
    },
    Dataset {
        name: "orders",
        table: "orders",
        scoped: true,
        domain: "sales",
        fields: &[
            field("id", Id),
            field("account_id", Id),
            field("owner_id", Id),
            field("team_id", Id),
            Field {
                name: "amount",
                sql: "total",
                r#type: Amount,
            },
            field("currency", Text),
            field("ordered_at", Time),
        ],
    },
    Dataset {
        name: "tickets",
        table: "tickets",
        scoped: true,
        domain: "servicedesk",
        fields: &[
            field("id", Id),
            field("type", Enum(TICKET_TYPE)),
            field("channel", Enum(TICKET_CHANNEL)),
            field("priority", Enum(PRIORITY)),
            field("status", Enum(TICKET_STATUS)),
            Field {
                name: "assignee_id",
                sql: "owner_id",
                r#type: Id,
            },
            Field {
                name: "group_id",
                sql: "team_id",
                r#type: Id,
            },
            field("account_id", Id),
            field("csat_score", Number),
            field("created_at", Time),
            field("first_response_at", Time),
            field("solved_at", Time),
        ],
    },
    Dataset {
        name: "campaign_members",
        table: "campaign_members",
        scoped: false,
        domain: "marketing",
        fields: &[
            field("id", Id),
            field("campaign_id", Id),
            field("status", Enum(MEMBER_STATUS)),
            field("responded_at", Time),
            field("converted_at", Time),
        ],
    },
];

pub fn dataset(name: &str) -> Option<&'static Dataset> {
    DATASETS.iter().find(|d| d.name == name)
}

/// Most dimensions, measures and rows a report has.
pub const MAX_DIMENSIONS: usize = 2;
pub const MAX_MEASURES: usize = 10;
pub const DEFAULT_LIMIT: i64 = 1_000;
pub const MAX_LIMIT: i64 = 10_000;

/// A checked dimension: a field, bucketed when it is a time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dimension {
    pub field: &'static Field,
    pub bucket: Option<DateBucket>,
}

impl Dimension {
    pub fn name(&self) -> &'static str {
        self.field.name
    }
}

/// A checked measure, with its column name.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurePlan {
    pub aggregate: Aggregate,
    pub field: Option<&'static Field>,
    pub name: String,
}

impl MeasurePlan {
    /// The measure's values are amounts (counted in one currency).
    pub fn is_amount(&self) -> bool {
        self.field.is_some_and(|f| f.r#type == Amount)
            && !matches!(self.aggregate, Aggregate::DistinctCount | Aggregate::Count)
    }
}

/// A typed, checked operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    None,
    Id(Uuid),
    Text(String),
    Int(i16),
    Number(Decimal),
    Time(DateTime<Utc>),
    Date(NaiveDate),
    List(Vec<Operand>),
}

/// A checked condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub field: &'static Field,
    pub op: Operator,
    pub operand: Operand,
}

/// A definition checked against its dataset: what the store compiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub dataset: &'static Dataset,
    pub dimensions: Vec<Dimension>,
    pub measures: Vec<MeasurePlan>,
    pub filter: Option<FilterTree<Comparison>>,
    /// (output column index, descending).
    pub sort: Vec<(usize, bool)>,
    pub limit: i64,
    /// Asked for; none: the dataset's most used.
    pub currency: Option<String>,
}

fn aggregate_name(a: Aggregate) -> &'static str {
    match a {
        Aggregate::Count | Aggregate::Unspecified => "count",
        Aggregate::Sum => "sum",
        Aggregate::Avg => "avg",
        Aggregate::Min => "min",
        Aggregate::Max => "max",
        Aggregate::DistinctCount => "distinct_count",
    }
}

fn known_fields(d: &Dataset) -> String {
    d.fields
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks a definition under `path` (`report.definition`), every problem
/// named by its field.
pub fn check(def: &ReportDefinition, path: &str) -> Result<Plan, Error> {
    let mut v = Violations::new();
    let Some(dataset) = dataset(def.dataset.trim()) else {
        let known: Vec<_> = DATASETS.iter().map(|d| d.name).collect();
        return Err(Error::invalid(
            format!("{path}.dataset"),
            format!("must be one of {}", known.join(", ")),
        ));
    };
    if def.group_by.len() > MAX_DIMENSIONS {
        v.add(format!("{path}.group_by"), "at most two dimensions");
    }
    let mut dimensions = Vec::new();
    for (i, g) in def.group_by.iter().take(MAX_DIMENSIONS).enumerate() {
        let at = format!("{path}.group_by[{i}]");
        let Some(field) = dataset.field(&g.field) else {
            v.add(
                format!("{at}.field"),
                format!(
                    "unknown field {:?}; use one of {}",
                    g.field,
                    known_fields(dataset)
                ),
            );
            continue;
        };
        let bucket = DateBucket::try_from(g.bucket).unwrap_or(DateBucket::Unspecified);
        let timed = matches!(field.r#type, Time | Date);
        match (timed, bucket) {
            (true, DateBucket::Unspecified) => {
                v.add(
                    format!("{at}.bucket"),
                    "a time field needs a bucket (day, week, month, quarter, year)",
                );
            }
            (false, b) if b != DateBucket::Unspecified => {
                v.add(format!("{at}.bucket"), "only time fields are bucketed");
            }
            (false, _) if matches!(field.r#type, Amount | Number) => {
                v.add(
                    format!("{at}.field"),
                    "numbers and amounts are measured, not grouped by",
                );
            }
            _ => dimensions.push(Dimension {
                field,
                bucket: timed.then_some(bucket),
            }),
        }
    }
    if dimensions.len() == 2 && dimensions[0].field == dimensions[1].field {
        v.add(
            format!("{path}.group_by[1].field"),
            "is already the first dimension",
        );
    }
    if def.measures.is_empty() {
        v.add(format!("{path}.measures"), "at least one measure (count)");
    }
    if def.measures.len() > MAX_MEASURES {
        v.add(format!("{path}.measures"), "at most ten measures");
    }
    let mut measures: Vec<MeasurePlan> = Vec::new();
    for (i, m) in def.measures.iter().take(MAX_MEASURES).enumerate() {
        let at = format!("{path}.measures[{i}]");
        let aggregate = Aggregate::try_from(m.aggregate).unwrap_or(Aggregate::Unspecified);
        if aggregate == Aggregate::Unspecified {
            v.add(format!("{at}.aggregate"), "is required");
            continue;
        }
        if aggregate == Aggregate::Count {
            if !m.field.is_empty() {
                v.add(
                    format!("{at}.field"),
                    "count counts rows: leave the field empty",
                );
                continue;
            }
            measures.push(MeasurePlan {
                aggregate,
                field: None,
                name: "count".into(),
            });
            continue;
        }
        let Some(field) = dataset.field(&m.field) else {
            v.add(
                format!("{at}.field"),
                format!(
                    "unknown field {:?}; use one of {}",
                    m.field,
                    known_fields(dataset)
                ),
            );
            continue;
        };
        let fits = match aggregate {
            Aggregate::Sum | Aggregate::Avg => matches!(field.r#type, Number | Amount),
            Aggregate::Min | Aggregate::Max => {
                matches!(field.r#type, Number | Amount | Time | Date)
            }
            _ => true,
        };
        if !fits {
            v.add(
                format!("{at}.field"),
                format!(
                    "{} of a {} field is not a measure",
                    aggregate_name(aggregate),
                    field.r#type.name()
                ),
            );
            continue;
        }
        let name = format!("{}_{}", aggregate_name(aggregate), field.name);
        if measures.iter().any(|m| m.name == name) {
            v.add(at, format!("{name} is measured already"));
            continue;
        }
        measures.push(MeasurePlan {
            aggregate,
            field: Some(field),
            name,
        });
    }
    let filter = match kit::filter::check(
        def.filter.as_ref(),
        &format!("{path}.filter"),
        &mut |c, at| condition(dataset, c, at),
    ) {
        Ok(filter) => filter,
        Err(Error::InvalidArgument(list)) => {
            for violation in list {
                v.add(violation.field, violation.description);
            }
            None
        }
        Err(other) => return Err(other),
    };
    let columns: Vec<&str> = dimensions
        .iter()
        .map(|d| d.name())
        .chain(measures.iter().map(|m| m.name.as_str()))
        .collect();
    let mut sort = Vec::new();
    for (i, s) in def.sort.iter().enumerate() {
        match columns.iter().position(|c| *c == s.key) {
            Some(column) => sort.push((column, s.descending)),
            None => v.add(
                format!("{path}.sort[{i}].key"),
                format!(
                    "must be one of the report's columns: {}",
                    columns.join(", ")
                ),
            ),
        }
    }
    let limit = match i64::from(def.limit) {
        0 => DEFAULT_LIMIT,
        n if (1..=MAX_LIMIT).contains(&n) => n,
        _ => {
            v.add(format!("{path}.limit"), "must be 1 to 10,000 rows");
            DEFAULT_LIMIT
        }
    };
    let currency = def.currency.trim().to_ascii_uppercase();
    if !currency.is_empty()
        && (currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()))
    {
        v.add(
            format!("{path}.currency"),
            "must be an ISO 4217 code such as EUR",
        );
    }
    v.into_result()?;
    Ok(Plan {
        dataset,
        dimensions,
        measures,
        filter,
        sort,
        limit,
        currency: (!currency.is_empty()).then_some(currency),
    })
}

fn condition(dataset: &Dataset, c: &Condition, at: &str) -> Result<Comparison, Error> {
    let field = dataset.field(&c.field).ok_or_else(|| {
        Error::invalid(
            format!("{at}.field"),
            format!(
                "unknown field {:?}; use one of {}",
                c.field,
                known_fields(dataset)
            ),
        )
    })?;
    let op = Operator::try_from(c.op).unwrap_or(Operator::Unspecified);
    let value_at = format!("{at}.value");
    let kind = c.value.as_ref().and_then(|v| v.kind.as_ref());
    let operand = match op {
        Operator::Unspecified => return Err(Error::invalid(format!("{at}.op"), "is required")),
        Operator::IsSet | Operator::IsNotSet => Operand::None,
        Operator::In => {
            let Some(Kind::ListValue(list)) = kind else {
                return Err(Error::invalid(value_at, "IN needs a list value"));
            };
            if list.values.is_empty() || list.values.len() > 1000 {
                return Err(Error::invalid(value_at, "IN needs 1 to 1,000 values"));
            }
            Operand::List(
                list.values
                    .iter()
                    .map(|v| operand(field, v.kind.as_ref(), &value_at))
                    .collect::<Result<_, _>>()?,
            )
        }
        _ => operand(field, kind, &value_at)?,
    };
    let is_text = field.r#type == Text;
    let ordered = matches!(field.r#type, Number | Amount | Time | Date | Text);
    match op {
        Operator::Contains | Operator::StartsWith if !is_text => Err(Error::invalid(
            format!("{at}.op"),
            "CONTAINS and STARTS_WITH work on text fields only",
        )),
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte if !ordered => {
            Err(Error::invalid(
                format!("{at}.op"),
                "this field cannot be compared with <, <=, >, >=",
            ))
        }
        _ => Ok(Comparison { field, op, operand }),
    }
}

fn operand(field: &Field, kind: Option<&Kind>, at: &str) -> Result<Operand, Error> {
    let wrong = |expected: String| Error::invalid(at, format!("must be {expected}"));
    match (field.r#type, kind) {
        (Id, Some(Kind::StringValue(s))) => Uuid::parse_str(s)
            .map(Operand::Id)
            .map_err(|_| wrong("an id (UUID)".into())),
        (Text, Some(Kind::StringValue(s))) if s.chars().count() <= 500 => {
            Ok(Operand::Text(s.clone()))
        }
        (Enum(e), Some(Kind::StringValue(s))) => e.parse(s).map(Operand::Int).ok_or_else(|| {
            let names: Vec<_> = e.values().into_iter().map(|(n, _)| n).collect();
            wrong(format!("one of {}", names.join(", ")))
        }),
        (Number | Amount, Some(Kind::NumberValue(n))) => Decimal::try_from(*n)
            .map(Operand::Number)
            .map_err(|_| wrong("a finite number".into())),
        (Number | Amount, Some(Kind::StringValue(s))) => s
            .trim()
            .parse()
            .map(Operand::Number)
            .map_err(|_| wrong("a number".into())),
        (Time, Some(Kind::StringValue(s))) => DateTime::parse_from_rfc3339(s)
            .map(|t| Operand::Time(t.with_timezone(&Utc)))
            .map_err(|_| wrong("an RFC 3339 timestamp".into())),
        (Date, Some(Kind::StringValue(s))) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Operand::Date)
            .map_err(|_| wrong("a date as YYYY-MM-DD".into())),
        (t, _) => Err(wrong(format!("a {} value", t.name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::customers::v1::{filter, Filter};
    use crm_proto::crm::reporting::v1::{GroupBy, Measure, Sort};

    fn deals() -> ReportDefinition {
        ReportDefinition {
            dataset: "deals".into(),
            group_by: vec![
                GroupBy {
                    field: "owner_id".into(),
                    bucket: 0,
                },
                GroupBy {
                    field: "closed_at".into(),
                    bucket: DateBucket::Quarter as i32,
                },
            ],
            measures: vec![
                Measure {
                    aggregate: Aggregate::Count as i32,
                    field: String::new(),
                },
                Measure {
                    aggregate: Aggregate::Sum as i32,
                    field: "amount".into(),
                },
            ],
            sort: vec![Sort {
                key: "sum_amount".into(),
                descending: true,
            }],
            ..Default::default()
        }
    }

    fn fields(error: Error) -> Vec<String> {
        match error {
            Error::InvalidArgument(list) => list.into_iter().map(|v| v.field).collect(),
            other => panic!("not a bad request: {other:?}"),
        }
    }

    #[test]
    fn a_definition_is_checked_into_a_plan() {
        let plan = check(&deals(), "definition").expect("a plan");
        assert_eq!(plan.dimensions.len(), 2);
        assert_eq!(plan.measures[1].name, "sum_amount");
        assert!(plan.measures[1].is_amount());
        assert_eq!(plan.sort, [(3, true)]);
        assert_eq!(plan.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        let mut bad = deals();
        bad.group_by[0].field = "amount; DROP TABLE deals".into();
        bad.group_by[1].bucket = 0;
        bad.measures[1].field = "lost_reason".into();
        bad.sort[0].key = "1".into();
        bad.limit = 50_000;
        bad.filter = Some(Filter {
            node: Some(filter::Node::Condition(Condition {
                field: "status".into(),
                op: Operator::Eq as i32,
                value: Some(prost_types::Value {
                    kind: Some(Kind::StringValue("maybe".into())),
                }),
            })),
        });
        assert_eq!(
            fields(check(&bad, "definition").expect_err("bad")),
            [
                "definition.group_by[0].field",
                "definition.group_by[1].bucket",
                "definition.measures[1].field",
                "definition.filter.condition.value",
                "definition.sort[0].key",
                "definition.limit"
            ]
        );
        let unknown = ReportDefinition {
            dataset: "users".into(),
            ..deals()
        };
        assert_eq!(
            fields(check(&unknown, "definition").expect_err("bad")),
            ["definition.dataset"]
        );
    }

    #[test]
    fn enums_are_named_as_the_proto_names_them() {
        assert_eq!(TICKET_CHANNEL.parse("web_form"), Some(2));
        assert_eq!(TICKET_CHANNEL.key(2), "web_form");
        assert_eq!(DEAL_STATUS.parse("WON"), Some(2));
        assert_eq!(LEAD_SOURCE.parse("carrier pigeon"), None);
        assert!(TICKET_TYPE.values().iter().any(|(n, _)| n == "complaint"));
    }

    #[test]
    fn datasets_name_their_fields_once() {
        for d in DATASETS {
            for f in d.fields {
                assert_eq!(d.fields.iter().filter(|g| g.name == f.name).count(), 1);
                assert!(f.sql.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            }
            assert_eq!(d.has_amounts(), d.field("currency").is_some(), "{}", d.name);
            assert_eq!(
                d.scoped,
                d.fields.iter().any(|f| f.sql == "owner_id"),
                "{}",
                d.name
            );
        }
    }
}
