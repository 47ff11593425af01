//! Products, price books, quotes, orders, invoices and payments over REST,
//! translated to the sales service.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use crm_proto::crm::sales::v1 as pb;
use crm_proto::crm::sales::v1::catalog_service_client::CatalogServiceClient;
use crm_proto::crm::sales::v1::order_service_client::OrderServiceClient;
use crm_proto::crm::sales::v1::quote_service_client::QuoteServiceClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::problem::{self, Problem};
use super::rest::{
    bool_param, enum_text, if_match, next_token, non_empty, page_params, parse_uuid, timestamp,
    with_etag, MoneyDto,
};
use super::{Caller, JsonBody, SharedState};

type Channel = tonic::transport::Channel;

fn catalog(state: &SharedState) -> CatalogServiceClient<Channel> {
    CatalogServiceClient::new(state.sales.clone())
}

fn quotes(state: &SharedState) -> QuoteServiceClient<Channel> {
    QuoteServiceClient::new(state.sales.clone())
}

fn orders(state: &SharedState) -> OrderServiceClient<Channel> {
    OrderServiceClient::new(state.sales.clone())
}

fn money(m: Option<crm_proto::crm::common::v1::Money>) -> Option<MoneyDto> {
    m.map(MoneyDto::from)
}

// ---- products and price books ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub family: String,
    /// "each" when empty.
    #[serde(default)]
    pub unit: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProductDto {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub family: String,
    pub unit: String,
    pub active: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductDto>,
    pub next_page_token: Option<String>,
}

impl From<pb::Product> for ProductDto {
    fn from(p: pb::Product) -> Self {
        ProductDto {
            id: p.id,
            sku: p.sku,
            name: p.name,
            family: p.family,
            unit: p.unit,
            active: p.active,
        }
    }
}

#[utoipa::path(post, path = "/v1/products", tag = "commerce", request_body = ProductInput, security(("bearer" = [])),
    responses((status = 201, body = ProductDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "the SKU exists")))]
pub async fn create_product(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<ProductInput>,
) -> Result<(StatusCode, Json<ProductDto>), Problem> {
    let product = pb::Product {
        sku: input.sku,
        name: input.name,
        family: input.family,
        unit: input.unit,
        ..Default::default()
    };
    let request = state.upstream(
        &caller,
        pb::CreateProductRequest {
            product: Some(product),
        },
    )?;
    let created = catalog(&state)
        .create_product(request)
        .await?
        .into_inner()
        .product
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/v1/products", tag = "commerce", security(("bearer" = [])),
    params(("include_inactive" = Option<bool>, Query), ("page_size" = Option<i32>, Query, minimum = 1, maximum = 500), ("page_token" = Option<String>, Query)),
    responses((status = 200, body = ProductPage)))]
pub async fn list_products(
    State(state): State<SharedState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ProductPage>, Problem> {
    let page = page_params(&params, &["page_size", "page_token", "include_inactive"])?;
    let include_inactive = bool_param(&params, "include_inactive")?;
    let request = state.upstream(
        &caller,
        pb::ListProductsRequest {
            include_inactive,
            page: Some(page),
        },
    )?;
    let response = catalog(&state).list_products(request).await?.into_inner();
    Ok(Json(ProductPage {
        items: response
            .products
            .into_iter()
            .map(ProductDto::from)
            .collect(),
        next_page_token: next_token(response.page),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceBookInput {
    pub name: String,
    /// ISO 4217.
    pub currency: String,
    /// The first book is the default whatever this says.
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PriceBookDto {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub is_default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PriceBookList {
    pub items: Vec<PriceBookDto>,
}

impl From<pb::PriceBook> for PriceBookDto {
    fn from(b: pb::PriceBook) -> Self {
        PriceBookDto {
            id: b.id,
            name: b.name,
            currency: b.currency,
            is_default: b.is_default,
        }
    }
}

#[utoipa::path(post, path = "/v1/price-books", tag = "commerce", request_body = PriceBookInput, security(("bearer" = [])),
    responses((status = 201, body = PriceBookDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn create_price_book(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<PriceBookInput>,
) -> Result<(StatusCode, Json<PriceBookDto>), Problem> {
    let book = pb::PriceBook {
        id: String::new(),
        name: input.name,
        currency: input.currency,
        is_default: input.is_default,
    };
    let request = state.upstream(
        &caller,
        pb::CreatePriceBookRequest {
            price_book: Some(book),
        },
    )?;
    let created = catalog(&state)
        .create_price_book(request)
        .await?
        .into_inner()
        .price_book
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/v1/price-books", tag = "commerce", security(("bearer" = [])), responses((status = 200, body = PriceBookList)))]
pub async fn list_price_books(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<Json<PriceBookList>, Problem> {
    let request = state.upstream(&caller, pb::ListPriceBooksRequest {})?;
    let books = catalog(&state)
        .list_price_books(request)
        .await?
        .into_inner()
        .price_books;
    Ok(Json(PriceBookList {
        items: books.into_iter().map(PriceBookDto::from).collect(),
    }))
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceDto {
    pub product_id: uuid::Uuid,
    pub list_price: MoneyDto,
}

#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceList {
    #[schema(max_items = 1000)]
    pub items: Vec<PriceDto>,
}

fn price_list(entries: Vec<pb::PriceBookEntry>) -> PriceList {
    PriceList {
        items: entries
            .into_iter()
            .filter_map(|e| {
                Some(PriceDto {
                    product_id: uuid::Uuid::parse_str(&e.product_id).ok()?,
                    list_price: e.list_price.map(MoneyDto::from).unwrap_or_default(),
                })
            })
            .collect(),
    }
}

#[utoipa::path(put, path = "/v1/price-books/{id}/prices", tag = "commerce", request_body = PriceList, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "price book id")),
    responses((status = 200, body = PriceList, description = "every price of the book"), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn set_prices(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PriceList>,
) -> Result<Json<PriceList>, Problem> {
    parse_uuid("id", &id)?;
    let entries = input
        .items
        .into_iter()
        .map(|p| pb::PriceBookEntry {
            price_book_id: id.clone(),
            product_id: p.product_id.to_string(),
            list_price: Some(p.list_price.into()),
        })
        .collect();
    let request = state.upstream(
        &caller,
        pb::SetPricesRequest {
            price_book_id: id,
            entries,
        },
    )?;
    Ok(Json(price_list(
        catalog(&state)
            .set_prices(request)
            .await?
            .into_inner()
            .entries,
    )))
}

#[utoipa::path(get, path = "/v1/price-books/{id}/prices", tag = "commerce", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "price book id")), responses((status = 200, body = PriceList)))]
pub async fn list_prices(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PriceList>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::ListPricesRequest { price_book_id: id })?;
    Ok(Json(price_list(
        catalog(&state)
            .list_prices(request)
            .await?
            .into_inner()
            .entries,
    )))
}

// ---- quotes ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteLineInput {
    pub product_id: uuid::Uuid,
    /// Decimal string.
    pub quantity: String,
    /// The price book's list price when absent.
    #[serde(default)]
    pub unit_price: Option<MoneyDto>,
    #[serde(default)]
    pub discount_percent: String,
    #[serde(default)]
    pub tax_percent: String,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteLineDto {
    pub product_id: uuid::Uuid,
    pub quantity: String,
    pub unit_price: Option<MoneyDto>,
    pub discount_percent: String,
    pub tax_percent: String,
    /// quantity x unit price x (1 - discount), rounded to cents.
    pub net: Option<MoneyDto>,
    /// net x tax, rounded to cents.
    pub tax: Option<MoneyDto>,
    pub total: Option<MoneyDto>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteInput {
    /// Create only.
    pub opportunity_id: Option<uuid::Uuid>,
    /// Create only; the default book when absent.
    pub price_book_id: Option<uuid::Uuid>,
    pub lines: Vec<QuoteLineInput>,
    /// YYYY-MM-DD.
    #[serde(default)]
    pub valid_until: String,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteDto {
    pub id: String,
    pub opportunity_id: String,
    pub price_book_id: String,
    /// draft, pending_approval, approved, sent, accepted, rejected or expired.
    pub status: String,
    pub lines: Vec<QuoteLineDto>,
    pub valid_until: Option<String>,
    pub subtotal: Option<MoneyDto>,
    pub discount_total: Option<MoneyDto>,
    pub tax_total: Option<MoneyDto>,
    pub total: Option<MoneyDto>,
    pub max_discount_percent: String,
    pub owner_id: Option<String>,
    pub team_id: Option<String>,
    pub approval_comment: String,
    pub decided_by: String,
    pub version: i64,
}

impl From<pb::Quote> for QuoteDto {
    fn from(q: pb::Quote) -> Self {
        QuoteDto {
            status: pb::QuoteStatus::try_from(q.status)
                .map(|s| enum_text(s.as_str_name(), "QUOTE_STATUS_"))
                .unwrap_or_default(),
            lines: q
                .lines
                .into_iter()
                .filter_map(|l| {
                    Some(QuoteLineDto {
                        product_id: uuid::Uuid::parse_str(&l.product_id).ok()?,
                        quantity: l.quantity,
                        unit_price: money(l.unit_price),
                        discount_percent: l.discount_percent,
                        tax_percent: l.tax_percent,
                        net: money(l.net),
                        tax: money(l.tax),
                        total: money(l.total),
                    })
                })
                .collect(),
            version: q.audit.map(|a| a.version).unwrap_or_default(),
            id: q.id,
            opportunity_id: q.opportunity_id,
            price_book_id: q.price_book_id,
            valid_until: non_empty(q.valid_until),
            subtotal: money(q.subtotal),
            discount_total: money(q.discount_total),
            tax_total: money(q.tax_total),
            total: money(q.total),
            max_discount_percent: q.max_discount_percent,
            owner_id: non_empty(q.owner_id),
            team_id: non_empty(q.team_id),
            approval_comment: q.approval_comment,
            decided_by: q.decided_by,
        }
    }
}

fn quote_lines(lines: Vec<QuoteLineInput>) -> Vec<pb::QuoteLine> {
    lines
        .into_iter()
        .map(|l| pb::QuoteLine {
            product_id: l.product_id.to_string(),
            quantity: l.quantity,
            unit_price: l.unit_price.map(Into::into),
            discount_percent: l.discount_percent,
            tax_percent: l.tax_percent,
            ..Default::default()
        })
        .collect()
}

#[utoipa::path(post, path = "/v1/quotes", tag = "commerce", request_body = QuoteInput, security(("bearer" = [])),
    responses((status = 201, body = QuoteDto), (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "no default price book")))]
pub async fn create_quote(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<QuoteInput>,
) -> Result<(StatusCode, Json<QuoteDto>), Problem> {
    let opportunity = input
        .opportunity_id
        .ok_or_else(|| Problem::invalid("opportunity_id", "is required"))?;
    let quote = pb::Quote {
        opportunity_id: opportunity.to_string(),
        price_book_id: input
            .price_book_id
            .map(|b| b.to_string())
            .unwrap_or_default(),
        lines: quote_lines(input.lines),
        valid_until: input.valid_until,
        ..Default::default()
    };
    let request = state.upstream(&caller, pb::CreateQuoteRequest { quote: Some(quote) })?;
    let created = quotes(&state)
        .create_quote(request)
        .await?
        .into_inner()
        .quote
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[utoipa::path(get, path = "/v1/quotes/{id}", tag = "commerce", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "quote id")),
    responses((status = 200, body = QuoteDto, headers(("ETag" = String))), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_quote(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetQuoteRequest { id })?;
    let dto = QuoteDto::from(
        quotes(&state)
            .get_quote(request)
            .await?
            .into_inner()
            .quote
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[utoipa::path(put, path = "/v1/quotes/{id}", tag = "commerce", request_body = QuoteInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "a draft or rejected quote"), ("If-Match" = Option<String>, Header, description = "ETag of the version being revised")),
    responses((status = 200, body = QuoteDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 412, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn update_quote(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<QuoteInput>,
) -> Result<Response, Problem> {
    parse_uuid("id", &id)?;
    let expected_version = if_match(&headers)?;
    let quote = pb::Quote {
        id,
        lines: quote_lines(input.lines),
        valid_until: input.valid_until,
        ..Default::default()
    };
    let request = state.upstream(
        &caller,
        pb::UpdateQuoteRequest {
            quote: Some(quote),
            expected_version,
        },
    )?;
    let dto = QuoteDto::from(
        quotes(&state)
            .update_quote(request)
            .await?
            .into_inner()
            .quote
            .unwrap_or_default(),
    );
    Ok(with_etag(StatusCode::OK, dto.version, dto))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteAction {
    /// submit, approve, reject, send, accept or decline.
    pub action: String,
    /// Required to reject.
    #[serde(default)]
    pub comment: String,
}

/// One route for the quote's life: submit (draft -> approved or pending
/// approval), approve / reject (a manager of the owner's team), send,
/// accept / decline (the customer's answer).
#[utoipa::path(post, path = "/v1/quotes/{id}/actions", tag = "commerce", request_body = QuoteAction, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "quote id")),
    responses((status = 200, body = QuoteDto), (status = 403, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "not allowed in the quote's status")))]
pub async fn quote_action(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<QuoteAction>,
) -> Result<Json<QuoteDto>, Problem> {
    parse_uuid("id", &id)?;
    let mut client = quotes(&state);
    let quote = match input.action.as_str() {
        "submit" => {
            client
                .submit_quote(state.upstream(&caller, pb::SubmitQuoteRequest { id })?)
                .await?
                .into_inner()
                .quote
        }
        "approve" | "reject" => {
            let request = pb::DecideQuoteRequest {
                id,
                approve: input.action == "approve",
                comment: input.comment,
            };
            client
                .decide_quote(state.upstream(&caller, request)?)
                .await?
                .into_inner()
                .quote
        }
        "send" => {
            client
                .send_quote(state.upstream(&caller, pb::SendQuoteRequest { id })?)
                .await?
                .into_inner()
                .quote
        }
        "accept" | "decline" => {
            let request = pb::RecordCustomerDecisionRequest {
                id,
                accepted: input.action == "accept",
            };
            client
                .record_customer_decision(state.upstream(&caller, request)?)
                .await?
                .into_inner()
                .quote
        }
        _ => {
            return Err(Problem::invalid(
                "action",
                "must be submit, approve, reject, send, accept or decline",
            ))
        }
    };
    Ok(Json(quote.unwrap_or_default().into()))
}

// ---- orders, invoices, payments ----

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderInput {
    pub quote_id: uuid::Uuid,
    /// YYYY-MM-DD; today when absent.
    #[serde(default)]
    pub start_date: String,
    /// One year after the start when absent.
    #[serde(default)]
    pub end_date: String,
}

#[derive(Serialize, ToSchema)]
pub struct OrderDto {
    pub id: String,
    pub quote_id: String,
    pub opportunity_id: String,
    pub status: String,
    pub start_date: String,
    pub end_date: String,
    pub renewal_date: String,
    pub total: Option<MoneyDto>,
    pub owner_id: Option<String>,
}

impl From<pb::Order> for OrderDto {
    fn from(o: pb::Order) -> Self {
        OrderDto {
            status: pb::OrderStatus::try_from(o.status)
                .map(|s| enum_text(s.as_str_name(), "ORDER_STATUS_"))
                .unwrap_or_default(),
            id: o.id,
            quote_id: o.quote_id,
            opportunity_id: o.opportunity_id,
            start_date: o.start_date,
            end_date: o.end_date,
            renewal_date: o.renewal_date,
            total: money(o.total),
            owner_id: non_empty(o.owner_id),
        }
    }
}

#[utoipa::path(post, path = "/v1/orders", tag = "commerce", request_body = OrderInput, security(("bearer" = [])),
    responses((status = 201, body = OrderDto, description = "the quote's order (a retry returns the same)"),
              (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "the quote is not accepted")))]
pub async fn create_order(
    State(state): State<SharedState>,
    caller: Caller,
    JsonBody(input): JsonBody<OrderInput>,
) -> Result<(StatusCode, Json<OrderDto>), Problem> {
    let request = state.upstream(
        &caller,
        pb::CreateOrderRequest {
            quote_id: input.quote_id.to_string(),
            start_date: input.start_date,
            end_date: input.end_date,
        },
    )?;
    let order = orders(&state)
        .create_order(request)
        .await?
        .into_inner()
        .order
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(order.into())))
}

#[utoipa::path(get, path = "/v1/orders/{id}", tag = "commerce", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "order id")),
    responses((status = 200, body = OrderDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn get_order(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderDto>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(&caller, pb::GetOrderRequest { id })?;
    Ok(Json(
        orders(&state)
            .get_order(request)
            .await?
            .into_inner()
            .order
            .unwrap_or_default()
            .into(),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvoiceInput {
    /// What is not invoiced yet when absent.
    pub amount: Option<MoneyDto>,
    /// YYYY-MM-DD; today when absent.
    #[serde(default)]
    pub issued_on: String,
    pub due_on: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvoiceDto {
    pub id: String,
    pub order_id: String,
    pub amount: Option<MoneyDto>,
    pub paid: Option<MoneyDto>,
    pub issued_on: String,
    pub due_on: String,
    /// open, paid or overdue.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct InvoiceList {
    pub items: Vec<InvoiceDto>,
}

impl From<pb::Invoice> for InvoiceDto {
    fn from(i: pb::Invoice) -> Self {
        InvoiceDto {
            status: pb::InvoiceStatus::try_from(i.status)
                .map(|s| enum_text(s.as_str_name(), "INVOICE_STATUS_"))
                .unwrap_or_default(),
            id: i.id,
            order_id: i.order_id,
            amount: money(i.amount),
            paid: money(i.paid),
            issued_on: i.issued_on,
            due_on: i.due_on,
        }
    }
}

#[utoipa::path(post, path = "/v1/orders/{id}/invoices", tag = "commerce", request_body = InvoiceInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "order id")),
    responses((status = 201, body = InvoiceDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json"),
              (status = 409, body = problem::ProblemDocument, content_type = "application/problem+json", description = "the order is fully invoiced")))]
pub async fn create_invoice(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<InvoiceInput>,
) -> Result<(StatusCode, Json<InvoiceDto>), Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::CreateInvoiceRequest {
            order_id: id,
            amount: input.amount.map(Into::into),
            issued_on: input.issued_on,
            due_on: input.due_on,
        },
    )?;
    let invoice = orders(&state)
        .create_invoice(request)
        .await?
        .into_inner()
        .invoice
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(invoice.into())))
}

#[utoipa::path(get, path = "/v1/orders/{id}/invoices", tag = "commerce", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "order id")), responses((status = 200, body = InvoiceList)))]
pub async fn list_invoices(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<InvoiceList>, Problem> {
    parse_uuid("id", &id)?;
    let request = state.upstream(
        &caller,
        pb::ListInvoicesRequest {
            order_id: id,
            status: 0,
        },
    )?;
    let invoices = orders(&state)
        .list_invoices(request)
        .await?
        .into_inner()
        .invoices;
    Ok(Json(InvoiceList {
        items: invoices.into_iter().map(InvoiceDto::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    pub amount: MoneyDto,
    /// YYYY-MM-DD; today when absent.
    #[serde(default)]
    pub received_on: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub reference: String,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentDto {
    pub id: String,
    pub amount: Option<MoneyDto>,
    pub received_on: String,
    pub method: String,
    pub reference: String,
    pub recorded_at: Option<String>,
    pub invoice: InvoiceDto,
}

#[utoipa::path(post, path = "/v1/invoices/{id}/payments", tag = "commerce", request_body = PaymentInput, security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "invoice id")),
    responses((status = 201, body = PaymentDto), (status = 404, body = problem::ProblemDocument, content_type = "application/problem+json")))]
pub async fn record_payment(
    State(state): State<SharedState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<PaymentInput>,
) -> Result<(StatusCode, Json<PaymentDto>), Problem> {
    parse_uuid("id", &id)?;
    let payment = pb::Payment {
        invoice_id: id,
        amount: Some(input.amount.into()),
        received_on: input.received_on,
        method: input.method,
        reference: input.reference,
        ..Default::default()
    };
    let done = orders(&state)
        .record_payment(state.upstream(
            &caller,
            pb::RecordPaymentRequest {
                payment: Some(payment),
            },
        )?)
        .await?
        .into_inner();
    let p = done.payment.unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(PaymentDto {
            id: p.id,
            amount: money(p.amount),
            received_on: p.received_on,
            method: p.method,
            reference: p.reference,
            recorded_at: timestamp(p.recorded_at.as_ref()),
            invoice: done.invoice.unwrap_or_default().into(),
        }),
    ))
}
