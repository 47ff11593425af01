//! Import and export file formats of contacts and accounts: which fields
//! a file may fill, CSV and JSON-lines parsing, a row mapped onto a record
//! (with its per-column errors), and records written back as CSV cells.
//! The gRPC handlers in `grpc/data.rs` stream, batch and write; the
//! format rules live here.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use crm_proto::crm::customers::v1::*;
use kit::error::{FieldViolation, Violations};
use kit::Error;
use prost_types::value::Kind;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::custom_fields::FieldCatalog;
use crate::domain::lifecycle::{parse_stage, stage_name};

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
pub type Row = Vec<(String, String)>;

pub struct ParsedRow {
    pub number: i64,
    pub row: Result<Row, RowError>,
}

/// Checked import settings.
pub struct Plan {
    pub entity: Entity,
    pub format: ImportFormat,
    /// source column -> target field; empty = header names are targets.
    pub mapping: HashMap<String, String>,
    pub dedup: DedupPolicy,
    pub dry_run: bool,
    pub owner_id: String,
}

pub fn check_header(header: ImportHeader) -> kit::Result<Plan> {
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

/// The longest record (CSV row or JSON line) an import reads: a longer
/// one is an error, never buffered whole (an unterminated quote or a
/// missing newline would otherwise hold the rest of the upload in memory).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Feeds a blocking CSV reader from an async channel of chunks, and refuses
/// to run further than [`MAX_RECORD_BYTES`] (plus the parser's buffer)
/// past the start of the record being read.
struct ChunkReader {
    chunks: mpsc::Receiver<Bytes>,
    current: Bytes,
    /// Bytes handed to the parser so far.
    read: u64,
    /// Where the record being parsed starts (set by the parse loop).
    record_start: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const PARSER_BUFFER: u64 = 64 * 1024;
        if self.read - self.record_start.get() > MAX_RECORD_BYTES as u64 + PARSER_BUFFER {
            return Err(std::io::Error::other(format!(
                "a record is longer than {MAX_RECORD_BYTES} bytes (an unterminated quote?)"
            )));
        }
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        self.read += n as u64;
        Ok(n)
    }
}

/// Parses CSV on a blocking thread; sends each data row or its error.
pub fn parse_csv(chunks: mpsc::Receiver<Bytes>, rows: mpsc::Sender<ParsedRow>) {
    let record_start = std::rc::Rc::new(std::cell::Cell::new(0));
    let reader = ChunkReader {
        chunks,
        current: Bytes::new(),
        read: 0,
        record_start: record_start.clone(),
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut number = 0i64;
    loop {
        record_start.set(csv.position().byte());
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

/// Parses JSON lines: one object per line, values as strings. A line
/// longer than [`MAX_RECORD_BYTES`] is reported as that row's error and
/// skipped, never buffered whole.
pub async fn parse_json_lines(mut chunks: mpsc::Receiver<Bytes>, rows: mpsc::Sender<ParsedRow>) {
    let mut pending: Vec<u8> = Vec::new();
    // Bytes of `pending` already searched for a newline: each byte is
    // looked at once, however the line is split into chunks.
    let mut scanned = 0;
    // Inside an over-long line: drop bytes until its newline.
    let mut skipping = false;
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
        loop {
            let Some(at) = pending[scanned..].iter().position(|b| *b == b'\n') else {
                scanned = pending.len();
                if pending.len() > MAX_RECORD_BYTES && !skipping {
                    skipping = true;
                    number += 1;
                    let error = RowError {
                        row: number,
                        column: String::new(),
                        reason: format!("is longer than {MAX_RECORD_BYTES} bytes"),
                    };
                    let too_long = ParsedRow {
                        number,
                        row: Err(error),
                    };
                    if rows.send(too_long).await.is_err() {
                        return;
                    }
                }
                if skipping {
                    pending.clear();
                    scanned = 0;
                }
                break;
            };
            let end = scanned + at;
            let line: Vec<u8> = pending.drain(..=end).collect();
            scanned = 0;
            if std::mem::take(&mut skipping) {
                continue; // the rest of an over-long line
            }
            if line.len() > MAX_RECORD_BYTES {
                number += 1;
                let error = RowError {
                    row: number,
                    column: String::new(),
                    reason: format!("is longer than {MAX_RECORD_BYTES} bytes"),
                };
                if rows
                    .send(ParsedRow {
                        number,
                        row: Err(error),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
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
pub fn contact_from_row(
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

pub fn account_from_row(
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
pub fn row_errors(number: i64, error: Error, columns: &HashMap<String, String>) -> Vec<RowError> {
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

pub fn custom_cell(values: &HashMap<String, prost_types::Value>, key: &str) -> String {
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

pub fn stage(value: i32) -> String {
    LifecycleStage::try_from(value)
        .ok()
        .filter(|s| *s != LifecycleStage::Unspecified)
        .map(stage_name)
        .unwrap_or_default()
}

pub fn contact_record(contact: &Contact, custom_keys: &[String]) -> Vec<String> {
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

pub fn account_record(account: &Account, custom_keys: &[String]) -> Vec<String> {
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

pub const CONTACT_EXPORT_COLUMNS: &[&str] = &[
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
pub const ACCOUNT_EXPORT_COLUMNS: &[&str] = &[
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

pub fn csv_chunk(records: &[Vec<String>]) -> kit::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .map_err(|_| Error::Internal(anyhow::anyhow!("writing CSV failed")))?;
    }
    writer
        .into_inner()
        .map_err(|_| Error::Internal(anyhow::anyhow!("writing CSV failed")))
}
