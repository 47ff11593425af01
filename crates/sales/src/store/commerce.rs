//! Products, price books, quotes, orders, invoices and payments.

use chrono::{DateTime, NaiveDate, Utc};
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::{
    Invoice, Order, Payment, PriceBook, PriceBookEntry, Product, Quote, QuoteLine,
};
use kit::access::Scope;
use rust_decimal::Decimal;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{audit, checked_id, id_text};
use crate::domain::opportunity::cents;

// ---- products and price books ----

#[derive(sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    sku: String,
    name: String,
    family: String,
    unit: String,
    active: bool,
    tax_percent: Decimal,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

impl From<ProductRow> for Product {
    fn from(r: ProductRow) -> Self {
        Product {
            id: r.id.to_string(),
            sku: r.sku,
            name: r.name,
            family: r.family,
            unit: r.unit,
            active: r.active,
            tax_percent: r.tax_percent.normalize().to_string(),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

const PRODUCT: &str =
    "id, sku, name, family, unit, active, tax_percent, created_at, created_by, updated_at, updated_by, version";

/// A checked product's tax rate (`check_product` refused anything else).
fn tax_rate(p: &Product) -> Decimal {
    kit::input::plain_decimal(&p.tax_percent).unwrap_or_default()
}

pub async fn insert_product(
    tx: &mut PgConnection,
    tenant: Uuid,
    p: &Product,
    actor: &str,
) -> sqlx::Result<Product> {
    let row: ProductRow = sqlx::query_as(&format!(
        "INSERT INTO products (tenant_id, id, sku, name, family, unit, active, tax_percent, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8) RETURNING {PRODUCT}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(&p.sku)
    .bind(&p.name)
    .bind(&p.family)
    .bind(&p.unit)
    .bind(p.active)
    .bind(actor)
    .bind(tax_rate(p))
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn update_product(
    tx: &mut PgConnection,
    tenant: Uuid,
    p: &Product,
    actor: &str,
) -> sqlx::Result<Option<Product>> {
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "UPDATE products SET name = $3, family = $4, unit = $5, active = $6, tax_percent = $8, updated_at = now(), updated_by = $7, version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 RETURNING {PRODUCT}"
    ))
    .bind(tenant)
    .bind(checked_id(&p.id))
    .bind(&p.name)
    .bind(&p.family)
    .bind(&p.unit)
    .bind(p.active)
    .bind(actor)
    .bind(tax_rate(p))
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Product::from))
}

pub async fn product(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Product>> {
    let row: Option<ProductRow> = sqlx::query_as(&format!(
        "SELECT {PRODUCT} FROM products WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Product::from))
}

pub async fn list_products(
    tx: &mut PgConnection,
    tenant: Uuid,
    include_inactive: bool,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Product>> {
    let rows: Vec<ProductRow> = sqlx::query_as(&format!(
        "SELECT {PRODUCT} FROM products WHERE tenant_id = $1 AND (active OR $2) AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4"
    ))
    .bind(tenant)
    .bind(include_inactive)
    .bind(after)
    .bind(limit)
    .fetch_all(tx)
    .await?;
    Ok(rows.into_iter().map(Product::from).collect())
}

pub async fn insert_price_book(
    tx: &mut PgConnection,
    tenant: Uuid,
    book: &PriceBook,
) -> sqlx::Result<PriceBook> {
    let id = Uuid::now_v7();
    if book.is_default {
        sqlx::query(
            "UPDATE price_books SET is_default = false WHERE tenant_id = $1 AND is_default",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("INSERT INTO price_books (tenant_id, id, name, currency, is_default) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant)
        .bind(id)
        .bind(&book.name)
        .bind(&book.currency)
        .bind(book.is_default)
        .execute(tx)
        .await?;
    Ok(PriceBook {
        id: id.to_string(),
        ..book.clone()
    })
}

pub async fn price_books(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Vec<PriceBook>> {
    let rows: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT id, name, currency, is_default FROM price_books WHERE tenant_id = $1 ORDER BY is_default DESC, name",
    )
    .bind(tenant)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, currency, is_default)| PriceBook {
            id: id.to_string(),
            name,
            currency: currency.trim().to_owned(),
            is_default,
        })
        .collect())
}

pub async fn price_book(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Option<Uuid>,
) -> sqlx::Result<Option<PriceBook>> {
    Ok(price_books(tx, tenant)
        .await?
        .into_iter()
        .find(|b| match id {
            Some(id) => b.id == id.to_string(),
            None => b.is_default,
        }))
}

pub async fn set_price(
    tx: &mut PgConnection,
    tenant: Uuid,
    book: Uuid,
    product: Uuid,
    price: Decimal,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO price_book_entries (tenant_id, price_book_id, product_id, list_price) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, price_book_id, product_id) DO UPDATE SET list_price = EXCLUDED.list_price",
    )
    .bind(tenant)
    .bind(book)
    .bind(product)
    .bind(price)
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn prices(
    tx: &mut PgConnection,
    tenant: Uuid,
    book: Uuid,
) -> sqlx::Result<Vec<PriceBookEntry>> {
    let rows: Vec<(Uuid, Decimal, String)> = sqlx::query_as(
        "SELECT e.product_id, e.list_price, b.currency FROM price_book_entries e JOIN price_books b ON b.tenant_id = e.tenant_id AND b.id = e.price_book_id \
         WHERE e.tenant_id = $1 AND e.price_book_id = $2 ORDER BY e.product_id",
    )
    .bind(tenant)
    .bind(book)
    .fetch_all(tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(product, price, currency)| PriceBookEntry {
            price_book_id: book.to_string(),
            product_id: product.to_string(),
            list_price: Some(Money {
                amount: price.normalize().to_string(),
                currency: currency.trim().to_owned(),
            }),
        })
        .collect())
}

pub async fn list_price(
    tx: &mut PgConnection,
    tenant: Uuid,
    book: Uuid,
    product: Uuid,
) -> sqlx::Result<Option<Decimal>> {
    let row: Option<(Decimal,)> = sqlx::query_as(
        "SELECT list_price FROM price_book_entries WHERE tenant_id = $1 AND price_book_id = $2 AND product_id = $3",
    )
    .bind(tenant)
    .bind(book)
    .bind(product)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|(p,)| p))
}

pub async fn approval_threshold(tx: &mut PgConnection, tenant: Uuid) -> sqlx::Result<Decimal> {
    let row: Option<(Decimal,)> = sqlx::query_as(
        "SELECT discount_approval_threshold FROM sales_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(|(t,)| t).unwrap_or(Decimal::from(20)))
}

pub async fn set_approval_threshold(
    tx: &mut PgConnection,
    tenant: Uuid,
    threshold: Decimal,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sales_settings (tenant_id, discount_approval_threshold) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO UPDATE SET discount_approval_threshold = EXCLUDED.discount_approval_threshold",
    )
    .bind(tenant)
    .bind(threshold)
    .execute(tx)
    .await?;
    Ok(())
}

// ---- quotes ----

#[derive(sqlx::FromRow)]
struct QuoteRow {
    id: Uuid,
    opportunity_id: Uuid,
    price_book_id: Uuid,
    status: i16,
    lines: serde_json::Value,
    valid_until: Option<NaiveDate>,
    currency: String,
    subtotal: Decimal,
    discount_total: Decimal,
    tax_total: Decimal,
    total: Decimal,
    max_discount: Decimal,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    approval_comment: String,
    decided_by: String,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

const QUOTE: &str = "id, opportunity_id, price_book_id, status, lines, valid_until, currency, subtotal, discount_total, tax_total, total, max_discount, owner_id, team_id, approval_comment, decided_by, created_at, created_by, updated_at, updated_by, version";

fn lines_to_json(lines: &[QuoteLine]) -> serde_json::Value {
    let amount = |m: &Option<Money>| m.as_ref().map(|m| m.amount.clone()).unwrap_or_default();
    lines
        .iter()
        .map(|l| {
            serde_json::json!({"product_id": l.product_id, "quantity": l.quantity, "unit_price": amount(&l.unit_price),
                "discount_percent": l.discount_percent, "tax_percent": l.tax_percent,
                "net": amount(&l.net), "tax": amount(&l.tax), "total": amount(&l.total)})
        })
        .collect()
}

impl From<QuoteRow> for Quote {
    fn from(r: QuoteRow) -> Self {
        let currency = r.currency.trim().to_owned();
        let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let money = |v: &serde_json::Value, k: &str| {
            Some(Money {
                amount: text(v, k),
                currency: currency.clone(),
            })
        };
        let lines = r
            .lines
            .as_array()
            .map(|lines| {
                lines
                    .iter()
                    .map(|l| QuoteLine {
                        product_id: text(l, "product_id"),
                        quantity: text(l, "quantity"),
                        unit_price: money(l, "unit_price"),
                        discount_percent: text(l, "discount_percent"),
                        tax_percent: text(l, "tax_percent"),
                        net: money(l, "net"),
                        tax: money(l, "tax"),
                        total: money(l, "total"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Quote {
            id: r.id.to_string(),
            opportunity_id: r.opportunity_id.to_string(),
            price_book_id: r.price_book_id.to_string(),
            status: r.status.into(),
            lines,
            valid_until: r.valid_until.map(|d| d.to_string()).unwrap_or_default(),
            subtotal: cents(r.subtotal, &currency),
            discount_total: cents(r.discount_total, &currency),
            tax_total: cents(r.tax_total, &currency),
            total: cents(r.total, &currency),
            owner_id: id_text(r.owner_id),
            team_id: id_text(r.team_id),
            max_discount_percent: r.max_discount.normalize().to_string(),
            approval_comment: r.approval_comment,
            decided_by: r.decided_by,
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

/// A priced quote as written.
pub struct QuoteValues<'a> {
    pub quote: &'a Quote,
    pub currency: &'a str,
    pub valid_until: Option<NaiveDate>,
    pub totals: &'a crate::domain::quote::Totals,
}

pub async fn insert_quote(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    v: &QuoteValues<'_>,
    actor: &str,
) -> sqlx::Result<Quote> {
    let q = v.quote;
    let row: QuoteRow = sqlx::query_as(&format!(
        "INSERT INTO quotes (tenant_id, id, opportunity_id, price_book_id, status, lines, valid_until, currency, subtotal, discount_total, tax_total, total, max_discount, owner_id, team_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) RETURNING {QUOTE}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&q.opportunity_id))
    .bind(checked_id(&q.price_book_id))
    .bind(q.status as i16)
    .bind(lines_to_json(&q.lines))
    .bind(v.valid_until)
    .bind(v.currency)
    .bind(v.totals.subtotal)
    .bind(v.totals.discount)
    .bind(v.totals.tax)
    .bind(v.totals.total)
    .bind(v.totals.max_discount)
    .bind(checked_id(&q.owner_id))
    .bind(checked_id(&q.team_id))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn update_quote_lines(
    tx: &mut PgConnection,
    tenant: Uuid,
    v: &QuoteValues<'_>,
    actor: &str,
) -> sqlx::Result<Quote> {
    let q = v.quote;
    let row: QuoteRow = sqlx::query_as(&format!(
        "UPDATE quotes SET status = $3, lines = $4, valid_until = $5, subtotal = $6, discount_total = $7, tax_total = $8, total = $9, max_discount = $10, \
         approval_comment = '', decided_by = '', updated_at = now(), updated_by = $11, version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {QUOTE}"
    ))
    .bind(tenant)
    .bind(checked_id(&q.id))
    .bind(q.status as i16)
    .bind(lines_to_json(&q.lines))
    .bind(v.valid_until)
    .bind(v.totals.subtotal)
    .bind(v.totals.discount)
    .bind(v.totals.tax)
    .bind(v.totals.total)
    .bind(v.totals.max_discount)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn set_quote_status(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
    status: i32,
    decision: Option<(&str, &str)>,
    actor: &str,
) -> sqlx::Result<Quote> {
    let row: QuoteRow = sqlx::query_as(&format!(
        "UPDATE quotes SET status = $3, decided_by = coalesce($4, decided_by), approval_comment = coalesce($5, approval_comment), \
         updated_at = now(), updated_by = $6, version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {QUOTE}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(status as i16)
    .bind(decision.map(|d| d.0))
    .bind(decision.map(|d| d.1))
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_quote(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Quote>> {
    let row: Option<QuoteRow> = scope
        .select_one(QUOTE, "quotes", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Quote::from))
}

pub async fn list_quotes(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    opportunity: Option<Uuid>,
    status: Option<i16>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Quote>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {QUOTE} FROM quotes WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(o) = opportunity {
        query.push(" AND opportunity_id = ").push_bind(o);
    }
    if let Some(s) = status {
        query.push(" AND status = ").push_bind(s);
    }
    scope.push_sql(&mut query);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<QuoteRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Quote::from).collect())
}

// ---- orders, invoices, payments ----

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    quote_id: Uuid,
    opportunity_id: Uuid,
    status: i16,
    start_date: NaiveDate,
    end_date: NaiveDate,
    renewal_date: NaiveDate,
    total: Decimal,
    currency: String,
    owner_id: Option<Uuid>,
    team_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

const ORDER: &str = "id, quote_id, opportunity_id, status, start_date, end_date, renewal_date, total, currency, owner_id, team_id, created_at, created_by, updated_at, updated_by, version";

impl From<OrderRow> for Order {
    fn from(r: OrderRow) -> Self {
        Order {
            id: r.id.to_string(),
            quote_id: r.quote_id.to_string(),
            opportunity_id: r.opportunity_id.to_string(),
            status: r.status.into(),
            start_date: r.start_date.to_string(),
            end_date: r.end_date.to_string(),
            renewal_date: r.renewal_date.to_string(),
            total: cents(r.total, &r.currency),
            owner_id: id_text(r.owner_id),
            team_id: id_text(r.team_id),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

pub struct OrderValues {
    pub quote: Uuid,
    pub opportunity: Uuid,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub total: Decimal,
    pub currency: String,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
}

/// Inserts the quote's order, or returns the one already made from it.
pub async fn insert_order(
    tx: &mut PgConnection,
    tenant: Uuid,
    v: &OrderValues,
    actor: &str,
) -> sqlx::Result<(Order, bool)> {
    let row: Option<OrderRow> = sqlx::query_as(&format!(
        "INSERT INTO orders (tenant_id, id, quote_id, opportunity_id, status, start_date, end_date, renewal_date, total, currency, owner_id, team_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (tenant_id, quote_id) DO NOTHING RETURNING {ORDER}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(v.quote)
    .bind(v.opportunity)
    .bind(v.start)
    .bind(v.end)
    .bind(v.total)
    .bind(&v.currency)
    .bind(v.owner)
    .bind(v.team)
    .bind(actor)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = row {
        return Ok((row.into(), true));
    }
    let existing: OrderRow = sqlx::query_as(&format!(
        "SELECT {ORDER} FROM orders WHERE tenant_id = $1 AND quote_id = $2"
    ))
    .bind(tenant)
    .bind(v.quote)
    .fetch_one(tx)
    .await?;
    Ok((existing.into(), false))
}

pub async fn find_order(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Order>> {
    let row: Option<OrderRow> = scope
        .select_one(ORDER, "orders", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Order::from))
}

pub async fn list_orders(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    opportunity: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Order>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {ORDER} FROM orders WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(o) = opportunity {
        query.push(" AND opportunity_id = ").push_bind(o);
    }
    scope.push_sql(&mut query);
    if let Some(after) = after {
        query.push(" AND id > ").push_bind(after);
    }
    query.push(" ORDER BY id LIMIT ").push_bind(limit);
    let rows: Vec<OrderRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Order::from).collect())
}

#[derive(sqlx::FromRow)]
struct InvoiceRow {
    id: Uuid,
    order_id: Uuid,
    amount: Decimal,
    paid: Decimal,
    currency: String,
    issued_on: NaiveDate,
    due_on: NaiveDate,
    status: i16,
    created_at: DateTime<Utc>,
    created_by: String,
    updated_at: DateTime<Utc>,
    updated_by: String,
    version: i64,
}

const INVOICE: &str = "id, order_id, amount, paid, currency, issued_on, due_on, status, created_at, created_by, updated_at, updated_by, version";

impl From<InvoiceRow> for Invoice {
    fn from(r: InvoiceRow) -> Self {
        Invoice {
            id: r.id.to_string(),
            order_id: r.order_id.to_string(),
            amount: cents(r.amount, &r.currency),
            paid: cents(r.paid, &r.currency),
            issued_on: r.issued_on.to_string(),
            due_on: r.due_on.to_string(),
            status: r.status.into(),
            audit: audit(
                r.created_at,
                r.created_by,
                r.updated_at,
                r.updated_by,
                r.version,
            ),
        }
    }
}

pub async fn invoiced_total(
    tx: &mut PgConnection,
    tenant: Uuid,
    order: Uuid,
) -> sqlx::Result<Decimal> {
    let (sum,): (Option<Decimal>,) =
        sqlx::query_as("SELECT sum(amount) FROM invoices WHERE tenant_id = $1 AND order_id = $2")
            .bind(tenant)
            .bind(order)
            .fetch_one(tx)
            .await?;
    Ok(sum.unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_invoice(
    tx: &mut PgConnection,
    tenant: Uuid,
    order: &Order,
    amount: Decimal,
    currency: &str,
    issued_on: NaiveDate,
    due_on: NaiveDate,
    actor: &str,
) -> sqlx::Result<Invoice> {
    let id = Uuid::now_v7();
    let row: InvoiceRow = sqlx::query_as(&format!(
        "INSERT INTO invoices (tenant_id, id, order_id, amount, currency, issued_on, due_on, status, owner_id, team_id, created_by, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $10) RETURNING {INVOICE}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&order.id))
    .bind(amount)
    .bind(currency)
    .bind(issued_on)
    .bind(due_on)
    .bind(checked_id(&order.owner_id))
    .bind(checked_id(&order.team_id))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO invoice_due_dates (tenant_id, invoice_id, due_on) VALUES ($1, $2, $3)",
    )
    .bind(tenant)
    .bind(id)
    .bind(due_on)
    .execute(tx)
    .await?;
    Ok(row.into())
}

pub async fn find_invoice(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Invoice>> {
    let row: Option<InvoiceRow> = scope
        .select_one(INVOICE, "invoices", tenant, id, lock)
        .build_query_as()
        .fetch_optional(tx)
        .await?;
    Ok(row.map(Invoice::from))
}

pub async fn list_invoices(
    tx: &mut PgConnection,
    tenant: Uuid,
    scope: &Scope,
    order: Option<Uuid>,
    status: Option<i16>,
) -> sqlx::Result<Vec<Invoice>> {
    let mut query =
        QueryBuilder::<Postgres>::new(format!("SELECT {INVOICE} FROM invoices WHERE tenant_id = "));
    query.push_bind(tenant);
    if let Some(o) = order {
        query.push(" AND order_id = ").push_bind(o);
    }
    if let Some(s) = status {
        query.push(" AND status = ").push_bind(s);
    }
    scope.push_sql(&mut query);
    query.push(" ORDER BY due_on, id LIMIT 500");
    let rows: Vec<InvoiceRow> = query.build_query_as().fetch_all(tx).await?;
    Ok(rows.into_iter().map(Invoice::from).collect())
}

/// Adds a payment to an invoice; returns the invoice as it is now.
pub async fn apply_payment(
    tx: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
    amount: Decimal,
    actor: &str,
) -> sqlx::Result<Invoice> {
    let row: InvoiceRow = sqlx::query_as(&format!(
        "UPDATE invoices SET paid = paid + $3, status = CASE WHEN paid + $3 >= amount THEN 2 ELSE status END, \
         updated_at = now(), updated_by = $4, version = version + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {INVOICE}"
    ))
    .bind(tenant)
    .bind(invoice)
    .bind(amount)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    if row.status == 2 {
        forget_due_date(tx, tenant, invoice).await?;
    }
    Ok(row.into())
}

pub async fn insert_payment(
    tx: &mut PgConnection,
    tenant: Uuid,
    p: &Payment,
    amount: Decimal,
    currency: &str,
    received_on: NaiveDate,
    actor: &str,
) -> sqlx::Result<Payment> {
    let id = Uuid::now_v7();
    let (recorded_at,): (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO payments (tenant_id, id, invoice_id, amount, currency, received_on, method, reference, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING recorded_at",
    )
    .bind(tenant)
    .bind(id)
    .bind(checked_id(&p.invoice_id))
    .bind(amount)
    .bind(currency)
    .bind(received_on)
    .bind(&p.method)
    .bind(&p.reference)
    .bind(actor)
    .fetch_one(tx)
    .await?;
    Ok(Payment {
        id: id.to_string(),
        invoice_id: p.invoice_id.clone(),
        amount: Some(Money {
            amount: amount.normalize().to_string(),
            currency: currency.to_owned(),
        }),
        received_on: received_on.to_string(),
        method: p.method.clone(),
        reference: p.reference.clone(),
        recorded_at: Some(kit::time::to_timestamp(recorded_at)),
    })
}

type PaymentRow = (
    Uuid,
    Uuid,
    Decimal,
    String,
    NaiveDate,
    String,
    String,
    DateTime<Utc>,
);

/// A payment by id (its invoice decides who may see it).
pub async fn find_payment(
    tx: &mut PgConnection,
    tenant: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Payment>> {
    let row: Option<PaymentRow> = sqlx::query_as(
        "SELECT id, invoice_id, amount, currency, received_on, method, reference, recorded_at \
             FROM payments WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(
        |(id, invoice_id, amount, currency, received_on, method, reference, recorded_at)| Payment {
            id: id.to_string(),
            invoice_id: invoice_id.to_string(),
            amount: Some(Money {
                amount: amount.normalize().to_string(),
                currency,
            }),
            received_on: received_on.to_string(),
            method,
            reference,
            recorded_at: Some(kit::time::to_timestamp(recorded_at)),
        },
    ))
}

pub async fn forget_due_date(
    tx: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM invoice_due_dates WHERE tenant_id = $1 AND invoice_id = $2")
        .bind(tenant)
        .bind(invoice)
        .execute(tx)
        .await?;
    Ok(())
}

/// Invoices past due (before `today`), locked so pods share the work.
pub async fn lock_past_due(
    tx: &mut PgConnection,
    today: NaiveDate,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT tenant_id, invoice_id FROM invoice_due_dates WHERE due_on < $1 ORDER BY due_on LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(today)
    .bind(limit)
    .fetch_all(tx)
    .await
}

pub async fn mark_overdue(
    tx: &mut PgConnection,
    tenant: Uuid,
    invoice: Uuid,
) -> sqlx::Result<Option<Invoice>> {
    let row: Option<InvoiceRow> = sqlx::query_as(&format!(
        "UPDATE invoices SET status = 3, updated_at = now(), updated_by = 'system:sales', version = version + 1 \
         WHERE tenant_id = $1 AND id = $2 AND status = 1 RETURNING {INVOICE}"
    ))
    .bind(tenant)
    .bind(invoice)
    .fetch_optional(tx)
    .await?;
    Ok(row.map(Invoice::from))
}
