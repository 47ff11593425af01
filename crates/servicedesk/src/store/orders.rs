//! Orders the desk learnt from sales, for tickets' after-sales context.

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::servicedesk::v1::KnownOrder;
use kit::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::id_text;

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    account_id: Option<Uuid>,
    contact_ids: Vec<Uuid>,
    total_amount: String,
    total_currency: String,
    opportunity_id: Option<Uuid>,
    ordered_at: DateTime<Utc>,
}

impl From<OrderRow> for KnownOrder {
    fn from(r: OrderRow) -> Self {
        KnownOrder {
            id: r.id.to_string(),
            account_id: id_text(r.account_id),
            contact_ids: r.contact_ids.iter().map(Uuid::to_string).collect(),
            total: (!r.total_currency.is_empty()).then_some(Money {
                amount: r.total_amount,
                currency: r.total_currency,
            }),
            opportunity_id: id_text(r.opportunity_id),
            ordered_at: Some(to_timestamp(r.ordered_at)),
        }
    }
}

const COLUMNS: &str =
    "id, account_id, contact_ids, total_amount, total_currency, opportunity_id, ordered_at";

/// Records an order once (a redelivered event changes nothing).
pub async fn record(
    tx: &mut PgConnection,
    tenant: Uuid,
    order: &KnownOrder,
    ordered_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let total = order.total.clone().unwrap_or_default();
    let contacts: Vec<Uuid> = order
        .contact_ids
        .iter()
        .filter_map(|c| Uuid::parse_str(c).ok())
        .collect();
    sqlx::query(
        "INSERT INTO orders (tenant_id, id, account_id, contact_ids, total_amount, total_currency, opportunity_id, ordered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, id) DO NOTHING",
    )
    .bind(tenant)
    .bind(Uuid::parse_str(&order.id).unwrap_or_default())
    .bind(Uuid::parse_str(&order.account_id).ok())
    .bind(&contacts)
    .bind(&total.amount)
    .bind(&total.currency)
    .bind(Uuid::parse_str(&order.opportunity_id).ok())
    .bind(ordered_at)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn find(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<KnownOrder>> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Into::into))
}

/// The latest orders of a contact (any of the deal's contacts) or, without
/// one, of an account; newest first.
pub async fn recent(
    tx: &mut PgConnection,
    tenant: Uuid,
    contact: Option<Uuid>,
    account: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<KnownOrder>> {
    let rows: Vec<OrderRow> = match (contact, account) {
        (Some(contact), _) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND contact_ids @> ARRAY[$2]::uuid[] \
                 ORDER BY ordered_at DESC, id DESC LIMIT $3"
            ))
            .bind(tenant)
            .bind(contact)
            .bind(limit)
            .fetch_all(tx)
            .await?
        }
        (None, Some(account)) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND account_id = $2 \
                 ORDER BY ordered_at DESC, id DESC LIMIT $3"
            ))
            .bind(tenant)
            .bind(account)
            .bind(limit)
            .fetch_all(tx)
            .await?
        }
        (None, None) => Vec::new(),
    };
    Ok(rows.into_iter().map(Into::into).collect())
}
