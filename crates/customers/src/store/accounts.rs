//! Accounts table.

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1::{Account, Address};
use rust_decimal::Decimal;
use sqlx::types::Json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::records::{select_visible, Table};
use super::{audit, id_string, parse_optional, Sort, SortKey};
use crate::domain::access::Scope;
use crate::domain::account::AccountKeys;
use crate::domain::custom_fields::to_proto_values;
use crate::domain::filter::FilterExpr;

pub const COLUMNS: &str =
    "id, name, domain, industry, size_band, revenue_amount, revenue_currency, address, phone, \
    website, parent_id, lifecycle_stage, credit_rating, owner_id, team_id, tags, custom, source, \
    created_at, created_by, updated_at, updated_by, version";

#[derive(sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub name: String,
    pub domain: String,
    pub industry: String,
    pub size_band: i32,
    pub revenue_amount: Option<Decimal>,
    pub revenue_currency: String,
    pub address: Json<Option<Address>>,
    pub phone: String,
    pub website: String,
    pub parent_id: Option<Uuid>,
    pub lifecycle_stage: i32,
    pub credit_rating: String,
    pub owner_id: Option<Uuid>,
    pub team_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub custom: Json<serde_json::Value>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    pub version: i64,
}

impl AccountRow {
    pub fn into_proto(self) -> Account {
        Account {
            id: self.id.to_string(),
            name: self.name,
            domain: self.domain,
            industry: self.industry,
            size_band: self.size_band,
            annual_revenue: self.revenue_amount.map(|amount| Money {
                amount: amount.normalize().to_string(),
                currency: self.revenue_currency,
            }),
            address: self.address.0.filter(|a| a != &Address::default()),
            phone: self.phone,
            website: self.website,
            parent_account_id: id_string(self.parent_id),
            lifecycle_stage: self.lifecycle_stage,
            credit_rating: self.credit_rating,
            owner_id: id_string(self.owner_id),
            team_id: id_string(self.team_id),
            tags: self.tags,
            custom_fields: to_proto_values(&self.custom.0),
            source: self.source,
            audit: audit(
                self.created_at,
                self.created_by,
                self.updated_at,
                self.updated_by,
                self.version,
            ),
        }
    }
}

/// Inserts (when `insert`) or fully rewrites a normalised account.
pub async fn save(
    tx: &mut PgConnection,
    tenant: Uuid,
    account: &Account,
    keys: &AccountKeys,
    actor: &str,
    insert: bool,
) -> sqlx::Result<Account> {
    let sql = if insert {
        format!(
            "INSERT INTO accounts (tenant_id, id, name, domain, industry, size_band, revenue_amount, revenue_currency,
                address, phone, website, parent_id, lifecycle_stage, credit_rating, owner_id, team_id, tags, custom,
                source, search_text, created_at, created_by, updated_at, updated_by, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                now(), $21, now(), $21, 1)
             RETURNING {COLUMNS}"
        )
    } else {
        format!(
            "UPDATE accounts SET name = $3, domain = $4, industry = $5, size_band = $6, revenue_amount = $7,
                revenue_currency = $8, address = $9, phone = $10, website = $11, parent_id = $12,
                lifecycle_stage = $13, credit_rating = $14, owner_id = $15, team_id = $16, tags = $17, custom = $18,
                source = $19, search_text = $20, updated_at = now(), updated_by = $21, version = version + 1
              WHERE tenant_id = $1 AND id = $2
              RETURNING {COLUMNS}"
        )
    };
    let (amount, currency) = keys
        .revenue
        .clone()
        .map(|(a, c)| (Some(a), c))
        .unwrap_or((None, String::new()));
    let row: AccountRow = sqlx::query_as(&sql)
        .bind(tenant)
        .bind(parse_optional(&account.id))
        .bind(&account.name)
        .bind(&account.domain)
        .bind(&account.industry)
        .bind(account.size_band)
        .bind(amount)
        .bind(currency)
        .bind(Json(&account.address))
        .bind(&account.phone)
        .bind(&account.website)
        .bind(parse_optional(&account.parent_account_id))
        .bind(account.lifecycle_stage)
        .bind(&account.credit_rating)
        .bind(parse_optional(&account.owner_id))
        .bind(parse_optional(&account.team_id))
        .bind(&account.tags)
        .bind(Json(&keys.custom))
        .bind(&account.source)
        .bind(&keys.search_text)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?;
    Ok(row.into_proto())
}

/// The row of `id` with its deletion time. The lookup names only the
/// primary key: a `deleted_at IS NULL` condition here would let the planner
/// pick a partial index on the tenant and scan all its rows for one id.
#[derive(sqlx::FromRow)]
struct FoundRow {
    #[sqlx(flatten)]
    row: AccountRow,
    deleted_at: Option<DateTime<Utc>>,
}

/// One live account by id, if `scope` sees it.
pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Account>> {
    let found: Option<FoundRow> = scope
        .select_one(
            &format!("{COLUMNS}, deleted_at"),
            "accounts",
            tenant,
            id,
            lock,
        )
        .build_query_as()
        .fetch_optional(&mut *tx)
        .await?;
    Ok(found
        .filter(|f| f.deleted_at.is_none())
        .map(|f| f.row.into_proto()))
}

/// Which of `ids` are live accounts of the tenant (the import checks a
/// batch's account references with one query).
pub async fn live_ids(
    tx: &mut PgConnection,
    tenant: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashSet<Uuid>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    // Liveness is checked on the rows found, not in the WHERE clause, so the
    // plan is the primary key whatever the statistics say (see
    // contacts::contacts_by_id).
    let found: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT id, deleted_at IS NULL FROM accounts WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut *tx)
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|(id, live)| live.then_some(id))
        .collect())
}

pub async fn list(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    sort: &Sort,
    after: Option<&SortKey>,
    limit: i64,
) -> kit::Result<Vec<Account>> {
    let mut query = select_visible(Table::Accounts, COLUMNS, tenant, scope, filter);
    sort.push_after(&mut query, after)?;
    sort.push_order(&mut query);
    query.push(" LIMIT ").push_bind(limit);
    let rows: Vec<AccountRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(AccountRow::into_proto).collect())
}

pub async fn count(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
) -> sqlx::Result<i64> {
    let (count,): (i64,) = select_visible(Table::Accounts, "count(*)", tenant, scope, filter)
        .build_query_as()
        .fetch_one(&mut *tx)
        .await?;
    Ok(count)
}

pub async fn ids_after(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    filter: Option<&FilterExpr>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Account>> {
    let mut query = select_visible(Table::Accounts, COLUMNS, tenant, scope, filter);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<AccountRow> = query.build_query_as().fetch_all(&mut *tx).await?;
    Ok(rows.into_iter().map(AccountRow::into_proto).collect())
}

/// Live accounts on `domain`, oldest first.
pub async fn find_by_domain(
    tx: &mut PgConnection,
    tenant: Uuid,
    domain: &str,
    exclude: Option<Uuid>,
) -> sqlx::Result<Vec<Account>> {
    let rows: Vec<AccountRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND domain = $2 AND domain <> '' AND deleted_at IS NULL
            AND ($3::uuid IS NULL OR id <> $3) ORDER BY created_at LIMIT 20"
    ))
    .bind(tenant)
    .bind(domain)
    .bind(exclude)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(AccountRow::into_proto).collect())
}

/// Live accounts with a similar name, with the similarity.
pub async fn find_similar_names(
    tx: &mut PgConnection,
    tenant: Uuid,
    name: &str,
    exclude: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(Account, f32)>> {
    let rows: Vec<(f32, Uuid)> = sqlx::query_as(
        "SELECT similarity(lower(name), $2) AS score, id FROM accounts
          WHERE tenant_id = $1 AND deleted_at IS NULL AND id <> $3 AND lower(name) % $2
          ORDER BY score DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(name.to_lowercase())
    .bind(exclude)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut found = Vec::new();
    for (score, id) in rows {
        if let Some(account) = find(tx, tenant, &Scope::Tenant, id, false).await? {
            found.push((account, score));
        }
    }
    Ok(found)
}

/// Moves references to `merged` (contacts, activities, child accounts) to `survivor`.
pub async fn repoint_references(
    tx: &mut PgConnection,
    tenant: Uuid,
    merged: Uuid,
    survivor: Uuid,
) -> sqlx::Result<()> {
    for sql in [
        "UPDATE contacts SET account_id = $3 WHERE tenant_id = $1 AND account_id = $2",
        "UPDATE activities SET account_id = $3 WHERE tenant_id = $1 AND account_id = $2",
        "UPDATE accounts SET parent_id = $3 WHERE tenant_id = $1 AND parent_id = $2 AND id <> $3",
    ] {
        sqlx::query(sql)
            .bind(tenant)
            .bind(merged)
            .bind(survivor)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
