//! `crm.customers.v1.DataService`: streaming CSV / JSON-lines import with a
//! dry run and dedup policy, streaming CSV export, and data-subject requests
//! (GDPR export and erasure).
//!
//! Import rows are written in batches, one transaction per batch and a
//! savepoint per row: a bad row is reported (row, column, reason) and rolled
//! back alone; it never aborts the good ones. Each written record publishes
//! its event like any other write.

use std::collections::HashMap;
use std::io::Read;
use std::pin::Pin;

use bytes::Bytes;
use crm_proto::crm::customers::v1::data_service_server::DataService;
use crm_proto::crm::customers::v1::*;
use futures::Stream;
use kit::auth::CallerContext;
use kit::error::{FieldViolation, Violations};
use kit::Error;
use prost_types::value::Kind;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{accounts as account_ops, commit, contacts as contact_ops, handle, SharedState, State};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::custom_fields::{entity_name, FieldCatalog};
use crate::domain::filter::{self, ACCOUNT_COLUMNS, CONTACT_COLUMNS};
use crate::domain::lifecycle::{parse_stage, stage_name};
use crate::domain::parse_id;
use crate::store::{accounts, activities, contacts, fields, segments};

pub struct DataHandlers(pub SharedState);

const BATCH_ROWS: usize = 200;
const MAX_ERRORS_KEPT: usize = 10_000;

const CONTACT_TARGETS: &[&str] = &[
    "first_name",
    "middle_name",
    "last_name",
    "title",
    "email",
    "phone",
    "tags",
    "lifecycle_stage",
    "language",
    "source",
    "account_id",
    "owner_id",
    "team_id",
    "birthday",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
];
const ACCOUNT_TARGETS: &[&str] = &[
    "name",
    "domain",
    "industry",
    "website",
    "phone",
    "tags",
    "lifecycle_stage",
    "source",
    "owner_id",
    "team_id",
    "credit_rating",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "annual_revenue",
    "currency",
];

/// A data row: (source column, value) pairs in file order.
type Row = Vec<(String, String)>;

struct ParsedRow {
    number: i64,
    row: Result<Row, RowError>,
}

/// Checked import settings.
struct Plan {
    entity: Entity,
    format: ImportFormat,
    /// source column -> target field; empty = header names are targets.
    mapping: HashMap<String, String>,
    dedup: DedupPolicy,
    dry_run: bool,
    owner_id: String,
}

fn check_header(header: ImportHeader) -> kit::Result<Plan> {
    let mut v = Violations::new();
    let entity = header.entity();
    let targets = match entity {
        Entity::Contact => CONTACT_TARGETS,
        Entity::Account => ACCOUNT_TARGETS,
        Entity::Unspecified => {
            v.add("header.entity", "must be ENTITY_CONTACT or ENTITY_ACCOUNT");
            &[][..]
        }
    };
    if header.format() == ImportFormat::Unspecified {
        v.add("header.format", "is required");
    }
    for (column, target) in &header.mapping {
        if !(targets.contains(&target.as_str()) || target.starts_with("custom.")) {
            v.add(
                format!("header.mapping[{column}]"),
                format!("{target:?} is not an importable field"),
            );
        }
    }
    if !header.owner_id.is_empty() && Uuid::parse_str(&header.owner_id).is_err() {
        v.add("header.owner_id", "is not a valid id (UUID)");
    }
    v.into_result()?;
    let dedup = match header.dedup() {
        DedupPolicy::Unspecified => DedupPolicy::Skip,
        other => other,
    };
    Ok(Plan {
        entity,
        format: header.format(),
        mapping: header.mapping,
        dedup,
        dry_run: header.dry_run,
        owner_id: header.owner_id,
    })
}

/// Feeds a blocking CSV reader from an async channel of chunks.
struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Parses CSV on a blocking thread; sends each data row or its error.
fn parse_csv(chunks: mpsc::Receiver<Bytes>, rows: mpsc::Sender<ParsedRow>) {
    let reader = ChunkReader {
        chunks,
        current: Bytes::new(),
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut number = 0i64;
    loop {
        let read = csv.read_byte_record(&mut record);
        let parsed = match read {
            Ok(false) => return,
            Ok(true) if header.is_none() => {
                match record
                    .iter()
                    .map(|f| {
                        std::str::from_utf8(f)
                            .map(|s| s.trim().trim_start_matches('\u{feff}').to_owned())
                    })
                    .collect()
                {
                    Ok(names) => header = Some(names),
                    Err(_) => {
                        let error = RowError {
                            row: 0,
                            column: String::new(),
                            reason: "the header row is not valid UTF-8".into(),
                        };
                        let _ = rows.blocking_send(ParsedRow {
                            number: 0,
                            row: Err(error),
                        });
                        return;
                    }
                }
                continue;
            }
            Ok(true) => {
                number += 1;
                let names = header.as_deref().unwrap_or_default();
                if record.len() != names.len() {
                    Err(RowError {
                        row: number,
                        column: String::new(),
                        reason: format!(
                            "has {} fields; the header has {}",
                            record.len(),
                            names.len()
                        ),
                    })
                } else {
                    let mut row = Vec::with_capacity(names.len());
                    let mut error = None;
                    for (name, field) in names.iter().zip(record.iter()) {
                        match std::str::from_utf8(field) {
                            Ok(value) => row.push((name.clone(), value.trim().to_owned())),
                            Err(_) => {
                                error = Some(RowError {
                                    row: number,
                                    column: name.clone(),
                                    reason: "is not valid UTF-8".into(),
                                });
                                break;
                            }
                        }
                    }
                    error.map_or(Ok(row), Err)
                }
            }
            Err(e) => {
                number += 1;
                let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                let error = RowError {
                    row: number,
                    column: String::new(),
                    reason: format!("unreadable CSV: {e}"),
                };
                if rows
                    .blocking_send(ParsedRow {
                        number,
                        row: Err(error),
                    })
                    .is_err()
                    || fatal
                {
                    return;
                }
                continue;
            }
        };
        if rows
            .blocking_send(ParsedRow {
                number,
                row: parsed,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Parses JSON lines: one object per line, values as strings.
async fn parse_json_lines(mut chunks: mpsc::Receiver<Bytes>, rows: mpsc::Sender<ParsedRow>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut number = 0i64;
    let mut finished = false;
    while !finished {
        match chunks.recv().await {
            Some(chunk) => pending.extend_from_slice(&chunk),
            None => {
                finished = true;
                if !pending.is_empty() {
                    pending.push(b'\n');
                }
            }
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim().to_owned();
            if line.is_empty() {
                continue;
            }
            number += 1;
            let parsed =
                match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&line) {
                    Ok(object) => Ok(object
                        .into_iter()
                        .map(|(k, v)| {
                            let value = match v {
                                serde_json::Value::String(s) => s,
                                serde_json::Value::Null => String::new(),
                                serde_json::Value::Array(items) => items
                                    .iter()
                                    .map(|i| {
                                        i.as_str()
                                            .map(str::to_owned)
                                            .unwrap_or_else(|| i.to_string())
                                    })
                                    .collect::<Vec<_>>()
                                    .join(";"),
                                other => other.to_string(),
                            };
                            (k, value.trim().to_owned())
                        })
                        .collect()),
                    Err(e) => Err(RowError {
                        row: number,
                        column: String::new(),
                        reason: format!("is not a JSON object: {e}"),
                    }),
                };
            if rows
                .send(ParsedRow {
                    number,
                    row: parsed,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// A custom field value from import text, typed by its definition.
fn custom_value(catalog: &FieldCatalog, key: &str, raw: &str) -> prost_types::Value {
    let kind = match catalog.get(key).map(|d| d.r#type()) {
        Some(FieldType::Number) => raw
            .parse::<f64>()
            .map(Kind::NumberValue)
            .unwrap_or_else(|_| Kind::StringValue(raw.into())),
        Some(FieldType::Bool) => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Kind::BoolValue(true),
            "false" | "no" | "0" => Kind::BoolValue(false),
            _ => Kind::StringValue(raw.into()),
        },
        Some(FieldType::MultiSelect) => Kind::ListValue(prost_types::ListValue {
            values: raw
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| prost_types::Value {
                    kind: Some(Kind::StringValue(s.into())),
                })
                .collect(),
        }),
        _ => Kind::StringValue(raw.into()),
    };
    prost_types::Value { kind: Some(kind) }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split([';', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Builds a contact from a row; returns it with field -> source column.
fn contact_from_row(
    row: &Row,
    plan: &Plan,
    catalog: &FieldCatalog,
) -> (Contact, HashMap<String, String>, Vec<RowError>) {
    let mut contact = Contact {
        owner_id: plan.owner_id.clone(),
        ..Default::default()
    };
    let mut columns = HashMap::new();
    let mut errors = Vec::new();
    let mut address = Address::default();
    for (column, value) in row {
        let target = match plan.mapping.get(column) {
            Some(target) => target.as_str(),
            None if plan.mapping.is_empty() => column.as_str(),
            None => continue,
        };
        if value.is_empty() {
            continue;
        }
        let field = match target {
            "first_name" => {
                contact.first_name = value.clone();
                "first_name"
            }
            "middle_name" => {
                contact.middle_name = value.clone();
                "middle_name"
            }
            "last_name" => {
                contact.last_name = value.clone();
                "last_name"
            }
            "title" => {
                contact.title = value.clone();
                "title"
            }
            "email" => {
                contact
                    .emails
                    .extend(split_list(value).into_iter().map(|address| Email {
                        address,
                        ..Default::default()
                    }));
                "emails"
            }
            "phone" => {
                contact.phones.push(Phone {
                    number: value.clone(),
                    ..Default::default()
                });
                "phones"
            }
            "tags" => {
                contact.tags.extend(split_list(value));
                "tags"
            }
            "lifecycle_stage" => {
                match parse_stage(value) {
                    Some(stage) => contact.lifecycle_stage = stage as i32,
                    None => errors.push(RowError {
                        row: 0,
                        column: column.clone(),
                        reason: format!("{value:?} is not a lifecycle stage"),
                    }),
                }
                "lifecycle_stage"
            }
            "language" => {
                contact.language = value.clone();
                "language"
            }
            "source" => {
                contact.source = value.clone();
                "source"
            }
            "account_id" => {
                contact.account_id = value.clone();
                "account_id"
            }
            "owner_id" => {
                contact.owner_id = value.clone();
                "owner_id"
            }
            "team_id" => {
                contact.team_id = value.clone();
                "team_id"
            }
            "birthday" => {
                contact.birthday = value.clone();
                "birthday"
            }
            "street" => {
                address.street = value.clone();
                "address"
            }
            "city" => {
                address.city = value.clone();
                "address"
            }
            "region" => {
                address.region = value.clone();
                "address"
            }
            "postal_code" => {
                address.postal_code = value.clone();
                "address"
            }
            "country" => {
                address.country = value.clone();
                "address"
            }
            custom if custom.starts_with("custom.") => {
                let key = &custom["custom.".len()..];
                contact
                    .custom_fields
                    .insert(key.to_owned(), custom_value(catalog, key, value));
                columns.insert(format!("custom_fields.{key}"), column.clone());
                continue;
            }
            _ => continue,
        };
        columns
            .entry(field.to_owned())
            .or_insert_with(|| column.clone());
    }
    if address != Address::default() {
        contact.address = Some(address);
    }
    (contact, columns, errors)
}

fn account_from_row(
    row: &Row,
    plan: &Plan,
    catalog: &FieldCatalog,
) -> (Account, HashMap<String, String>, Vec<RowError>) {
    let mut account = Account {
        owner_id: plan.owner_id.clone(),
        ..Default::default()
    };
    let mut columns = HashMap::new();
    let mut errors = Vec::new();
    let mut address = Address::default();
    let mut revenue = crm_proto::crm::common::v1::Money::default();
    for (column, value) in row {
        let target = match plan.mapping.get(column) {
            Some(target) => target.as_str(),
            None if plan.mapping.is_empty() => column.as_str(),
            None => continue,
        };
        if value.is_empty() {
            continue;
        }
        let field = match target {
            "name" => {
                account.name = value.clone();
                "name"
            }
            "domain" => {
                account.domain = value.clone();
                "domain"
            }
            "industry" => {
                account.industry = value.clone();
                "industry"
            }
            "website" => {
                account.website = value.clone();
                "website"
            }
            "phone" => {
                account.phone = value.clone();
                "phone"
            }
            "tags" => {
                account.tags.extend(split_list(value));
                "tags"
            }
            "lifecycle_stage" => {
                match parse_stage(value) {
                    Some(stage) => account.lifecycle_stage = stage as i32,
                    None => errors.push(RowError {
                        row: 0,
                        column: column.clone(),
                        reason: format!("{value:?} is not a lifecycle stage"),
                    }),
                }
                "lifecycle_stage"
            }
            "source" => {
                account.source = value.clone();
                "source"
            }
            "owner_id" => {
                account.owner_id = value.clone();
                "owner_id"
            }
            "team_id" => {
                account.team_id = value.clone();
                "team_id"
            }
            "credit_rating" => {
                account.credit_rating = value.clone();
                "credit_rating"
            }
            "street" => {
                address.street = value.clone();
                "address"
            }
            "city" => {
                address.city = value.clone();
                "address"
            }
            "region" => {
                address.region = value.clone();
                "address"
            }
            "postal_code" => {
                address.postal_code = value.clone();
                "address"
            }
            "country" => {
                address.country = value.clone();
                "address"
            }
            "annual_revenue" => {
                revenue.amount = value.clone();
                "annual_revenue"
            }
            "currency" => {
                revenue.currency = value.clone();
                "annual_revenue"
            }
            custom if custom.starts_with("custom.") => {
                let key = &custom["custom.".len()..];
                account
                    .custom_fields
                    .insert(key.to_owned(), custom_value(catalog, key, value));
                columns.insert(format!("custom_fields.{key}"), column.clone());
                continue;
            }
            _ => continue,
        };
        columns
            .entry(field.to_owned())
            .or_insert_with(|| column.clone());
    }
    if address != Address::default() {
        account.address = Some(address);
    }
    if !revenue.amount.is_empty() || !revenue.currency.is_empty() {
        account.annual_revenue = Some(revenue);
    }
    (account, columns, errors)
}

/// Turns an error of one row into row errors, naming the source column.
fn row_errors(number: i64, error: Error, columns: &HashMap<String, String>) -> Vec<RowError> {
    match error {
        Error::InvalidArgument(violations) => violations
            .into_iter()
            .map(|FieldViolation { field, description }| {
                // "contact.emails[0].address" -> "emails"; "contact.custom_fields.tier" -> "custom_fields.tier"
                let path = field
                    .split_once('.')
                    .map(|(_, rest)| rest)
                    .unwrap_or(&field);
                let key = if path.starts_with("custom_fields.") {
                    path.to_owned()
                } else {
                    path.split(['.', '[']).next().unwrap_or(path).to_owned()
                };
                let column = columns.get(&key).cloned().unwrap_or(field);
                RowError {
                    row: number,
                    column,
                    reason: description,
                }
            })
            .collect(),
        Error::Internal(cause) => {
            tracing::error!(error = ?cause, row = number, "import row failed");
            vec![RowError {
                row: number,
                column: String::new(),
                reason: "internal error".into(),
            }]
        }
        other => vec![RowError {
            row: number,
            column: String::new(),
            reason: other.to_string(),
        }],
    }
}

#[derive(Default)]
struct Tally {
    response: ImportResponse,
}

impl Tally {
    fn fail(&mut self, errors: Vec<RowError>) {
        self.response.failed += 1;
        self.response.errors.extend(errors);
        self.response.errors.truncate(MAX_ERRORS_KEPT);
    }
}

enum RowOutcome {
    Created,
    Updated,
    Skipped,
}

/// Writes (or, in a dry run, only checks) one contact row.
async fn import_contact(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    contact: Contact,
) -> kit::Result<RowOutcome> {
    let mut probe = contact.clone();
    let mut violations = Violations::new();
    let keys = crate::domain::contact::normalize(&mut probe, catalog, &mut violations);
    violations.into_result()?;
    let existing = if plan.dedup == DedupPolicy::Create || keys.email_keys.is_empty() {
        None
    } else {
        contacts::find_by_contact_points(tx, caller.tenant_id, &keys.email_keys, &[], None, 1)
            .await?
            .into_iter()
            .next()
    };
    match (existing, plan.dedup) {
        (Some(_), DedupPolicy::Skip) => Ok(RowOutcome::Skipped),
        (Some(found), _) => {
            let id = parse_id("id", &found.id)?;
            let before = contact_ops::visible_contact(tx, caller, id, true).await?;
            let mut after = before.clone();
            let paths: Vec<String> = imported_contact_fields(&contact);
            super::masks::apply_contact_mask(&mut after, contact.clone(), &paths, "row")?;
            after.emails = before.emails.clone();
            after.emails.extend(contact.emails);
            after.tags = crate::domain::tags::union(&before.tags, &after.tags);
            if plan.dry_run {
                let mut check = after;
                let mut violations = Violations::new();
                crate::domain::contact::normalize(&mut check, catalog, &mut violations);
                violations.into_result()?;
            } else {
                contact_ops::update_in(state, tx, caller, Some(catalog), &before, after).await?;
            }
            Ok(RowOutcome::Updated)
        }
        (None, _) => {
            if !plan.dry_run {
                contact_ops::create_in(state, tx, caller, Some(catalog), contact).await?;
            }
            Ok(RowOutcome::Created)
        }
    }
}

/// Fields a row actually carries (an update leaves the others alone).
fn imported_contact_fields(contact: &Contact) -> Vec<String> {
    let mut paths = Vec::new();
    let mut add = |set: bool, name: &str| {
        if set {
            paths.push(name.to_owned());
        }
    };
    add(!contact.first_name.is_empty(), "first_name");
    add(!contact.middle_name.is_empty(), "middle_name");
    add(!contact.last_name.is_empty(), "last_name");
    add(!contact.title.is_empty(), "title");
    add(!contact.phones.is_empty(), "phones");
    add(!contact.tags.is_empty(), "tags");
    add(contact.lifecycle_stage != 0, "lifecycle_stage");
    add(!contact.language.is_empty(), "language");
    add(!contact.source.is_empty(), "source");
    add(!contact.account_id.is_empty(), "account_id");
    add(!contact.birthday.is_empty(), "birthday");
    add(contact.address.is_some(), "address");
    paths.extend(
        contact
            .custom_fields
            .keys()
            .map(|k| format!("custom_fields.{k}")),
    );
    paths
}

async fn import_account(
    state: &State,
    tx: &mut PgConnection,
    caller: &CallerContext,
    plan: &Plan,
    catalog: &FieldCatalog,
    account: Account,
) -> kit::Result<RowOutcome> {
    let mut probe = account.clone();
    let mut violations = Violations::new();
    crate::domain::account::normalize(&mut probe, catalog, &mut violations);
    violations.into_result()?;
    let existing = if plan.dedup == DedupPolicy::Create || probe.domain.is_empty() {
        None
    } else {
        accounts::find_by_domain(tx, caller.tenant_id, &probe.domain, None)
            .await?
            .into_iter()
            .next()
    };
    match (existing, plan.dedup) {
        (Some(_), DedupPolicy::Skip) => Ok(RowOutcome::Skipped),
        (Some(found), _) => {
            let id = parse_id("id", &found.id)?;
            let before = account_ops::visible_account(tx, caller, id, true).await?;
            let mut after = before.clone();
            let mut paths = vec!["name".to_owned()];
            for (set, name) in [
                (!account.industry.is_empty(), "industry"),
                (!account.website.is_empty(), "website"),
                (!account.phone.is_empty(), "phone"),
                (account.lifecycle_stage != 0, "lifecycle_stage"),
                (account.annual_revenue.is_some(), "annual_revenue"),
                (account.address.is_some(), "address"),
                (!account.credit_rating.is_empty(), "credit_rating"),
                (!account.source.is_empty(), "source"),
            ] {
                if set {
                    paths.push(name.to_owned());
                }
            }
            paths.extend(
                account
                    .custom_fields
                    .keys()
                    .map(|k| format!("custom_fields.{k}")),
            );
            let new_tags = account.tags.clone();
            super::masks::apply_account_mask(&mut after, account, &paths, "row")?;
            after.tags = crate::domain::tags::union(&before.tags, &new_tags);
            if !plan.dry_run {
                account_ops::update_in(state, tx, caller, Some(catalog), &before, after).await?;
            }
            Ok(RowOutcome::Updated)
        }
        (None, _) => {
            if !plan.dry_run {
                account_ops::create_in(state, tx, caller, Some(catalog), account).await?;
            }
            Ok(RowOutcome::Created)
        }
    }
}

/// Applies a batch of rows in one transaction, a savepoint per row.
async fn apply_batch(
    state: &State,
    caller: &CallerContext,
    plan: &Plan,
    batch: Vec<ParsedRow>,
    tally: &mut Tally,
) -> kit::Result<()> {
    let mut tx = state.begin(caller).await?;
    let entity = plan.entity;
    let catalog = fields::catalog(&mut tx, caller.tenant_id, entity).await?;
    for parsed in batch {
        tally.response.rows_read += 1;
        let row = match parsed.row {
            Ok(row) => row,
            Err(error) => {
                tally.fail(vec![error]);
                continue;
            }
        };
        let mut savepoint = sqlx::Acquire::begin(&mut *tx).await.map_err(Error::from)?;
        let (result, columns, early_errors) = match entity {
            Entity::Account => {
                let (account, columns, errors) = account_from_row(&row, plan, &catalog);
                if errors.is_empty() {
                    (
                        import_account(state, &mut savepoint, caller, plan, &catalog, account)
                            .await,
                        columns,
                        errors,
                    )
                } else {
                    (Ok(RowOutcome::Skipped), columns, errors)
                }
            }
            _ => {
                let (contact, columns, errors) = contact_from_row(&row, plan, &catalog);
                if errors.is_empty() {
                    (
                        import_contact(state, &mut savepoint, caller, plan, &catalog, contact)
                            .await,
                        columns,
                        errors,
                    )
                } else {
                    (Ok(RowOutcome::Skipped), columns, errors)
                }
            }
        };
        if !early_errors.is_empty() {
            let _ = savepoint.rollback().await;
            tally.fail(
                early_errors
                    .into_iter()
                    .map(|mut e| {
                        e.row = parsed.number;
                        e
                    })
                    .collect(),
            );
            continue;
        }
        match result {
            Ok(outcome) => {
                savepoint.commit().await.map_err(Error::from)?;
                match outcome {
                    RowOutcome::Created => tally.response.created += 1,
                    RowOutcome::Updated => tally.response.updated += 1,
                    RowOutcome::Skipped => tally.response.skipped += 1,
                }
            }
            Err(error) => {
                let _ = savepoint.rollback().await;
                tally.fail(row_errors(parsed.number, error, &columns));
            }
        }
    }
    if plan.dry_run {
        tx.rollback().await.map_err(Error::from)?;
    } else {
        commit(tx).await?;
    }
    Ok(())
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs an import: parses rows as chunks arrive, applies them in batches,
/// reports progress after each batch and a summary at the end.
async fn run_import(
    state: SharedState,
    caller: CallerContext,
    plan: Plan,
    mut inbound: Streaming<ImportRequest>,
    progress: mpsc::Sender<Result<ImportResponse, Status>>,
) {
    let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(16);
    let (row_tx, mut row_rx) = mpsc::channel::<ParsedRow>(BATCH_ROWS * 2);
    let parser = match plan.format {
        ImportFormat::JsonLines => tokio::spawn(parse_json_lines(chunk_rx, row_tx)),
        _ => {
            let blocking = tokio::task::spawn_blocking(move || parse_csv(chunk_rx, row_tx));
            tokio::spawn(async move {
                let _ = blocking.await;
            })
        }
    };
    let feeder_progress = progress.clone();
    let feeder = tokio::spawn(async move {
        while let Some(message) = inbound.next().await {
            match message {
                Ok(ImportRequest {
                    part: Some(import_request::Part::Chunk(chunk)),
                }) => {
                    if chunk_tx.send(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {
                    let _ = feeder_progress
                        .send(Err(Status::invalid_argument(
                            "part: only the first message carries a header",
                        )))
                        .await;
                    return;
                }
                Err(status) => {
                    tracing::warn!(%status, "import upload interrupted");
                    return;
                }
            }
        }
    });

    let mut tally = Tally::default();
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut sent_errors = 0;
    loop {
        let next = row_rx.recv().await;
        let done = next.is_none();
        if let Some(row) = next {
            batch.push(row);
        }
        if batch.len() >= BATCH_ROWS || (done && !batch.is_empty()) {
            if let Err(error) = apply_batch(
                &state,
                &caller,
                &plan,
                std::mem::take(&mut batch),
                &mut tally,
            )
            .await
            {
                let _ = progress.send(Err(Status::from(error))).await;
                return;
            }
            if !plan.dry_run {
                let mut update = tally.response.clone();
                update.errors = update.errors[sent_errors..].to_vec();
                sent_errors = tally.response.errors.len();
                if progress.send(Ok(update)).await.is_err() {
                    return;
                }
            }
        }
        if done {
            break;
        }
    }
    let _ = feeder.await;
    let _ = parser.await;
    let mut summary = tally.response;
    if !plan.dry_run {
        summary.errors = summary.errors[sent_errors.min(summary.errors.len())..].to_vec();
    }
    summary.done = true;
    let _ = progress.send(Ok(summary)).await;
}

/// Neutralises cells a spreadsheet would run as a formula.
fn safe_cell(value: &str) -> String {
    let looks_numeric = value
        .trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.');
    match value.chars().next() {
        Some('=' | '@' | '\t' | '\r') => format!("'{value}"),
        Some('+' | '-') if !looks_numeric => format!("'{value}"),
        _ => value.to_owned(),
    }
}

fn custom_cell(values: &HashMap<String, prost_types::Value>, key: &str) -> String {
    match values.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::ListValue(list)) => list
            .values
            .iter()
            .filter_map(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(";"),
        _ => String::new(),
    }
}

fn stage(value: i32) -> String {
    LifecycleStage::try_from(value)
        .ok()
        .filter(|s| *s != LifecycleStage::Unspecified)
        .map(stage_name)
        .unwrap_or_default()
}

fn contact_record(contact: &Contact, custom_keys: &[String]) -> Vec<String> {
    let timestamp = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| kit::time::from_timestamp("", t).ok())
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    let audit = contact.audit.clone().unwrap_or_default();
    let address = contact.address.clone().unwrap_or_default();
    let mut record = vec![
        contact.id.clone(),
        contact.first_name.clone(),
        contact.middle_name.clone(),
        contact.last_name.clone(),
        contact.title.clone(),
        contact
            .emails
            .iter()
            .map(|e| e.address.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        contact
            .phones
            .iter()
            .map(|p| p.number.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        contact.account_id.clone(),
        stage(contact.lifecycle_stage),
        contact.owner_id.clone(),
        contact.team_id.clone(),
        contact.tags.join(";"),
        address.city,
        address.country,
        contact.language.clone(),
        contact.source.clone(),
        timestamp(audit.created_at.as_ref()),
        timestamp(audit.updated_at.as_ref()),
    ];
    record.extend(
        custom_keys
            .iter()
            .map(|k| custom_cell(&contact.custom_fields, k)),
    );
    record.iter().map(|v| safe_cell(v)).collect()
}

fn account_record(account: &Account, custom_keys: &[String]) -> Vec<String> {
    let timestamp = |t: Option<&prost_types::Timestamp>| {
        t.and_then(|t| kit::time::from_timestamp("", t).ok())
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    let audit = account.audit.clone().unwrap_or_default();
    let address = account.address.clone().unwrap_or_default();
    let revenue = account.annual_revenue.clone().unwrap_or_default();
    let mut record = vec![
        account.id.clone(),
        account.name.clone(),
        account.domain.clone(),
        account.industry.clone(),
        account.website.clone(),
        account.phone.clone(),
        revenue.amount,
        revenue.currency,
        stage(account.lifecycle_stage),
        account.owner_id.clone(),
        account.team_id.clone(),
        account.tags.join(";"),
        address.city,
        address.country,
        account.source.clone(),
        timestamp(audit.created_at.as_ref()),
        timestamp(audit.updated_at.as_ref()),
    ];
    record.extend(
        custom_keys
            .iter()
            .map(|k| custom_cell(&account.custom_fields, k)),
    );
    record.iter().map(|v| safe_cell(v)).collect()
}

const CONTACT_EXPORT_COLUMNS: &[&str] = &[
    "id",
    "first_name",
    "middle_name",
    "last_name",
    "title",
    "email",
    "phone",
    "account_id",
    "lifecycle_stage",
    "owner_id",
    "team_id",
    "tags",
    "city",
    "country",
    "language",
    "source",
    "created_at",
    "updated_at",
];
const ACCOUNT_EXPORT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "domain",
    "industry",
    "website",
    "phone",
    "annual_revenue",
    "currency",
    "lifecycle_stage",
    "owner_id",
    "team_id",
    "tags",
    "city",
    "country",
    "source",
    "created_at",
    "updated_at",
];

fn csv_chunk(records: &[Vec<String>]) -> Result<Vec<u8>, Status> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .map_err(|_| Status::internal("writing CSV failed"))?;
    }
    writer
        .into_inner()
        .map_err(|_| Status::internal("writing CSV failed"))
}

/// Streams the export page by page, each page in its own short transaction.
async fn run_export(
    state: SharedState,
    caller: CallerContext,
    entity: Entity,
    filter: Option<Filter>,
    out: mpsc::Sender<Result<ExportResponse, Status>>,
) -> kit::Result<()> {
    let columns = if entity == Entity::Account {
        ACCOUNT_COLUMNS
    } else {
        CONTACT_COLUMNS
    };
    let mut tx = state.begin(&caller).await?;
    let catalog = fields::catalog(&mut tx, caller.tenant_id, entity).await?;
    let filter = filter::check(filter.as_ref(), columns, &catalog, "filter")?;
    let custom_keys: Vec<String> = fields::list(&mut tx, caller.tenant_id, entity_name(entity))
        .await?
        .into_iter()
        .map(|d| d.key)
        .collect();
    drop(tx);
    let mut header: Vec<String> = if entity == Entity::Account {
        ACCOUNT_EXPORT_COLUMNS
    } else {
        CONTACT_EXPORT_COLUMNS
    }
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(custom_keys.iter().map(|k| format!("custom.{k}")));
    if out
        .send(csv_chunk(&[header]).map(|chunk| ExportResponse { chunk }))
        .await
        .is_err()
    {
        return Ok(());
    }
    let visible = scope(&caller);
    let mut after: Option<Uuid> = None;
    loop {
        let mut tx = state.begin(&caller).await?;
        let (records, last) = if entity == Entity::Account {
            let page = accounts::ids_after(
                &mut tx,
                caller.tenant_id,
                &visible,
                filter.as_ref(),
                after,
                1000,
            )
            .await?;
            (
                page.iter()
                    .map(|a| account_record(a, &custom_keys))
                    .collect::<Vec<_>>(),
                page.last().map(|a| a.id.clone()),
            )
        } else {
            let page = contacts::ids_after(
                &mut tx,
                caller.tenant_id,
                &visible,
                filter.as_ref(),
                None,
                after,
                1000,
            )
            .await?;
            (
                page.iter()
                    .map(|c| contact_record(c, &custom_keys))
                    .collect::<Vec<_>>(),
                page.last().map(|c| c.id.clone()),
            )
        };
        drop(tx);
        let Some(last) = last else { return Ok(()) };
        after = Uuid::parse_str(&last).ok();
        if out
            .send(csv_chunk(&records).map(|chunk| ExportResponse { chunk }))
            .await
            .is_err()
        {
            return Ok(());
        }
        if records.len() < 1000 {
            return Ok(());
        }
    }
}

fn activity_json(activity: &Activity) -> serde_json::Value {
    let time =
        |t: Option<&prost_types::Timestamp>| t.and_then(|t| kit::time::from_timestamp("", t).ok());
    serde_json::json!({
        "id": activity.id,
        "kind": ActivityKind::try_from(activity.kind).map(|k| k.as_str_name()).unwrap_or(""),
        "subject": activity.subject,
        "body": activity.body,
        "occurred_at": time(activity.occurred_at.as_ref()),
        "outcome": activity.outcome,
        "attendees": activity.attendees,
    })
}

#[tonic::async_trait]
impl DataService for DataHandlers {
    type ImportStream = ResponseStream<ImportResponse>;
    type ExportStream = ResponseStream<ExportResponse>;

    async fn import(
        &self,
        request: Request<Streaming<ImportRequest>>,
    ) -> Result<Response<Self::ImportStream>, Status> {
        let caller = kit::auth::caller(&request)?;
        authorize(&caller, Action::ImportExport)?;
        let mut inbound = request.into_inner();
        let header = match inbound.next().await {
            Some(Ok(ImportRequest {
                part: Some(import_request::Part::Header(header)),
            })) => header,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Error::invalid(
                    "header",
                    "the first message must carry the import header",
                )
                .into())
            }
        };
        let plan = check_header(header)?;
        let (progress, receiver) = mpsc::channel(16);
        tokio::spawn(run_import(self.0.clone(), caller, plan, inbound, progress));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn export(
        &self,
        request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let caller = kit::auth::caller(&request)?;
        authorize(&caller, Action::ImportExport)?;
        let request = request.into_inner();
        let entity = request.entity();
        if entity == Entity::Unspecified {
            return Err(
                Error::invalid("entity", "must be ENTITY_CONTACT or ENTITY_ACCOUNT").into(),
            );
        }
        // Check the filter before the stream starts, so a bad one is a plain error.
        let mut tx = self.0.begin(&caller).await?;
        let catalog = fields::catalog(&mut tx, caller.tenant_id, entity)
            .await
            .map_err(Error::from)?;
        let columns = if entity == Entity::Account {
            ACCOUNT_COLUMNS
        } else {
            CONTACT_COLUMNS
        };
        filter::check(request.filter.as_ref(), columns, &catalog, "filter")?;
        let file = if entity == Entity::Account {
            "accounts.csv"
        } else {
            "contacts.csv"
        };
        audit(&self.0, &mut tx, &caller, "data.exported", file).await?;
        commit(tx).await?;
        let (out, receiver) = mpsc::channel(4);
        let state = self.0.clone();
        tokio::spawn(async move {
            if let Err(error) = run_export(state, caller, entity, request.filter, out.clone()).await
            {
                let _ = out.send(Err(Status::from(error))).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn export_contact_data(
        &self,
        request: Request<ExportContactDataRequest>,
    ) -> Result<Response<ExportContactDataResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::ImportExport)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let mut tx = self.0.begin(&caller).await?;
            let contact = contact_ops::visible_contact(&mut tx, &caller, id, false).await?;
            let activities = activities::all_of_contact(&mut tx, caller.tenant_id, id).await?;
            let memberships = segments::memberships(&mut tx, caller.tenant_id, id).await?;
            let consents = contacts::consent_history(&mut tx, caller.tenant_id, id).await?;
            let address = contact.address.clone().unwrap_or_default();
            let document = serde_json::json!({
                "contact": {
                    "id": contact.id,
                    "first_name": contact.first_name,
                    "middle_name": contact.middle_name,
                    "last_name": contact.last_name,
                    "title": contact.title,
                    "birthday": contact.birthday,
                    "emails": contact.emails,
                    "phones": contact.phones,
                    "handles": contact.handles,
                    "address": address,
                    "language": contact.language,
                    "lifecycle_stage": stage(contact.lifecycle_stage),
                    "tags": contact.tags,
                    "custom_fields": contact.custom_fields.keys().map(|k| (k.clone(), custom_cell(&contact.custom_fields, k))).collect::<HashMap<_, _>>(),
                    "source": contact.source,
                },
                "activities": activities.iter().map(activity_json).collect::<Vec<_>>(),
                "segments": memberships,
                "consent_history": consents,
                "exported_at": chrono::Utc::now(),
            });
            audit(&self.0, &mut tx, &caller, "contact.personal_data_exported", &id.to_string()).await?;
            commit(tx).await?;
            tracing::info!(contact_id = %id, actor = %caller.subject, "personal data exported");
            Ok(ExportContactDataResponse { json: document.to_string() })
        })
        .await
    }

    async fn erase_contact(
        &self,
        request: Request<EraseContactRequest>,
    ) -> Result<Response<EraseContactResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Erase)?;
            let id = parse_id("contact_id", &request.contact_id)?;
            let mut tx = self.0.begin(&caller).await?;
            if !contacts::exists_any(&mut tx, caller.tenant_id, id).await? {
                return Err(Error::not_found("contact", id));
            }
            let version = contacts::erase(&mut tx, caller.tenant_id, id, &caller.subject).await?;
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    id,
                    version,
                    &ContactErased {
                        contact_id: id.to_string(),
                    },
                )
                .await?;
            audit(&self.0, &mut tx, &caller, "contact.erased", &id.to_string()).await?;
            commit(tx).await?;
            tracing::info!(contact_id = %id, actor = %caller.subject, "contact erased");
            Ok(EraseContactResponse {})
        })
        .await
    }
}

/// Records a sensitive operation where it happens: `audit.recorded` in the
/// same transaction, whatever protocol reached the service (the gateway
/// files it in the tenant's audit log).
async fn audit(
    state: &State,
    tx: &mut sqlx::PgConnection,
    caller: &CallerContext,
    action: &str,
    target: &str,
) -> kit::Result<()> {
    let record = AuditRecorded {
        action: action.to_owned(),
        target: target.to_owned(),
    };
    state
        .outbox
        .enqueue(tx, caller, Uuid::now_v7(), 1, &record)
        .await?;
    Ok(())
}
