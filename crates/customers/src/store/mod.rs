//! SQL of the customers service. Every query runs in a tenant-scoped
//! transaction (`kit::db::TenantTx`) and still filters on `tenant_id`; row
//! level security is the second wall. Rows are read straight into the wire
//! messages, which are this service's data carriers.

pub mod accounts;
pub mod activities;
pub mod contacts;
pub mod fields;
pub mod filter_sql;
pub mod records;
pub mod search;
pub mod segments;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Audit;
use kit::paging::{decode_cursor, encode_cursor};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::access::Scope;

/// Adds the caller's visibility to a query over a table with `owner_id`
/// and `team_id` columns.
pub fn push_scope(query: &mut QueryBuilder<'_, Postgres>, scope: &Scope) {
    scope.push_sql(query);
}

/// A list's sort order: a column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    CreatedAt,
    UpdatedAt,
    /// `lower(<name column>)`
    Name(&'static str),
}

/// Where the previous page ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum SortKey {
    Time(DateTime<Utc>, Uuid),
    Text(String, Uuid),
}

impl Sort {
    /// Parses `order_by` (`name`, `-created_at`, ...); `name_field` is the
    /// entity's name sort (`last_name`, `name`).
    pub fn parse(order_by: &str, name_field: &'static str) -> kit::Result<Self> {
        let (descending, field) = match order_by.trim() {
            "" => (true, "created_at"),
            s => s.strip_prefix('-').map(|f| (true, f)).unwrap_or((false, s)),
        };
        let column = match field {
            "created_at" => SortColumn::CreatedAt,
            "updated_at" => SortColumn::UpdatedAt,
            f if f == name_field => SortColumn::Name(name_field),
            _ => {
                return Err(kit::Error::invalid(
                    "order_by",
                    format!("must be one of {name_field}, created_at, updated_at, optionally prefixed with -"),
                ))
            }
        };
        Ok(Sort { column, descending })
    }

    fn expression(&self) -> String {
        match self.column {
            SortColumn::CreatedAt => "created_at".into(),
            SortColumn::UpdatedAt => "updated_at".into(),
            SortColumn::Name(column) => format!("lower({column})"),
        }
    }

    /// `AND (expr, id) > (key)` for the page after `after`.
    pub fn push_after(
        &self,
        query: &mut QueryBuilder<'_, Postgres>,
        after: Option<&SortKey>,
    ) -> kit::Result<()> {
        let Some(after) = after else { return Ok(()) };
        let comparison = if self.descending { " < " } else { " > " };
        query.push(format!(" AND ({}, id){comparison}(", self.expression()));
        match (self.column, after) {
            (SortColumn::Name(_), SortKey::Text(value, id)) => {
                query.push_bind(value.clone()).push(", ").push_bind(*id);
            }
            (SortColumn::CreatedAt | SortColumn::UpdatedAt, SortKey::Time(value, id)) => {
                query.push_bind(*value).push(", ").push_bind(*id);
            }
            _ => {
                return Err(kit::Error::invalid(
                    "page.page_token",
                    "was made for another order_by",
                ))
            }
        }
        query.push(")");
        Ok(())
    }

    pub fn push_order(&self, query: &mut QueryBuilder<'_, Postgres>) {
        let direction = if self.descending { "DESC" } else { "ASC" };
        query.push(format!(
            " ORDER BY {} {direction}, id {direction}",
            self.expression()
        ));
    }

    /// The sort key of a returned record, from its audit fields.
    pub fn key_of(&self, audit: Option<&Audit>, name: &str, id: &str) -> SortKey {
        let time = |t: Option<&prost_types::Timestamp>| {
            t.and_then(|t| kit::time::from_timestamp("", t).ok())
                .unwrap_or_default()
        };
        let audit = audit.cloned().unwrap_or_default();
        self.key(
            time(audit.created_at.as_ref()),
            time(audit.updated_at.as_ref()),
            name,
            Uuid::parse_str(id).unwrap_or_default(),
        )
    }

    pub fn key(
        &self,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        name: &str,
        id: Uuid,
    ) -> SortKey {
        match self.column {
            SortColumn::CreatedAt => SortKey::Time(created_at, id),
            SortColumn::UpdatedAt => SortKey::Time(updated_at, id),
            SortColumn::Name(_) => SortKey::Text(name.to_lowercase(), id),
        }
    }
}

pub fn encode_key(key: &SortKey) -> String {
    encode_cursor(key)
}

pub fn decode_key(token: &str) -> kit::Result<Option<SortKey>> {
    if token.is_empty() {
        Ok(None)
    } else {
        decode_cursor(token).map(Some)
    }
}

pub use kit::rpc::audit;

pub fn id_string(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}

/// Parses an id already validated by the domain layer (empty -> None).
pub fn parse_optional(raw: &str) -> Option<Uuid> {
    Uuid::parse_str(raw).ok()
}
