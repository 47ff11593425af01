//! OrderService: orders from accepted quotes, invoices and payments.

use chrono::{Months, NaiveDate, Utc};
use crm_proto::crm::sales::v1::order_service_server::OrderService;
use crm_proto::crm::sales::v1::*;
use kit::error::Violations;
use kit::input::{money, optional_date};
use kit::paging::{finish_page, Page};
use kit::Error;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::quotes::{currency_of, decimal};
use super::{commit, handle, page_response, version_of, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::{optional_id, parse_id, text};
use crate::store::checked_id;
use crate::store::commerce::{self as store, OrderValues};

pub struct OrderHandlers(pub SharedState);

fn date(field: &str, raw: &str, v: &mut Violations) -> Option<NaiveDate> {
    v.check(optional_date(field, raw)).flatten()
}

#[tonic::async_trait]
impl OrderService for OrderHandlers {
    async fn create_order(
        &self,
        request: Request<CreateOrderRequest>,
    ) -> Result<Response<CreateOrderResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateOrderRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let quote_id = parse_id("quote_id", &request.quote_id)?;
            let mut v = Violations::new();
            let start = date("start_date", &request.start_date, &mut v)
                .unwrap_or_else(|| Utc::now().date_naive());
            let end = date("end_date", &request.end_date, &mut v);
            let end =
                end.unwrap_or_else(|| start.checked_add_months(Months::new(12)).unwrap_or(start));
            if end < start {
                v.add("end_date", "must be on or after start_date");
            }
            v.into_result()?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "order",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let order = store::find_order(&mut tx, tenant, &scope(&caller), id, false)
                    .await?
                    .ok_or_else(|| Error::not_found("order", id))?;
                return Ok(CreateOrderResponse { order: Some(order) });
            }
            let quote = store::find_quote(&mut tx, tenant, &scope(&caller), quote_id, true)
                .await?
                .ok_or_else(|| Error::not_found("quote", quote_id))?;
            if quote.status != QuoteStatus::Accepted as i32 {
                return Err(Error::FailedPrecondition(
                    "only an accepted quote becomes an order".into(),
                ));
            }
            let values = OrderValues {
                quote: quote_id,
                opportunity: Uuid::parse_str(&quote.opportunity_id)
                    .map_err(|e| Error::Internal(e.into()))?,
                start,
                end,
                total: decimal(&quote.total),
                currency: currency_of(&quote),
                owner: checked_id(&quote.owner_id),
                team: checked_id(&quote.team_id),
            };
            let (order, created) =
                store::insert_order(&mut tx, tenant, &values, &caller.subject).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "order",
                &request.request_id,
                &fingerprint,
                parse_id("order.id", &order.id)?,
            )
            .await?;
            if created {
                let id = Uuid::parse_str(&order.id).map_err(|e| Error::Internal(e.into()))?;
                let deal = crate::store::opportunities::find(
                    &mut tx,
                    tenant,
                    &kit::access::Scope::Tenant,
                    values.opportunity,
                    false,
                )
                .await?
                .unwrap_or_default();
                self.0
                    .outbox
                    .enqueue(
                        &mut tx,
                        &caller,
                        id,
                        1,
                        &OrderCreated {
                            order: Some(order.clone()),
                            account_id: deal.account_id,
                            contact_ids: deal.contacts.into_iter().map(|c| c.contact_id).collect(),
                        },
                    )
                    .await?;
            }
            commit(tx).await?;
            Ok(CreateOrderResponse { order: Some(order) })
        })
        .await
    }

    async fn get_order(
        &self,
        request: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let order = store::find_order(&mut tx, caller.tenant_id, &scope(&caller), id, false)
                .await?
                .ok_or_else(|| Error::not_found("order", id))?;
            Ok(GetOrderResponse { order: Some(order) })
        })
        .await
    }

    async fn list_orders(
        &self,
        request: Request<ListOrdersRequest>,
    ) -> Result<Response<ListOrdersResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let opportunity = optional_id("opportunity_id", &request.opportunity_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_orders(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                opportunity,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (orders, next) = finish_page(rows, page.size, |o: &Order| {
                Uuid::parse_str(&o.id).unwrap_or_default()
            });
            Ok(ListOrdersResponse {
                orders,
                page: page_response(next),
            })
        })
        .await
    }

    async fn create_invoice(
        &self,
        request: Request<CreateInvoiceRequest>,
    ) -> Result<Response<CreateInvoiceResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateInvoiceRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let order_id = parse_id("order_id", &request.order_id)?;
            let mut v = Violations::new();
            let today = Utc::now().date_naive();
            let issued_on = date("issued_on", &request.issued_on, &mut v).unwrap_or(today);
            let due_on = date("due_on", &request.due_on, &mut v);
            if request.due_on.trim().is_empty() {
                v.add("due_on", "is required");
            }
            if due_on.is_some_and(|d| d < issued_on) {
                v.add("due_on", "must be on or after issued_on");
            }
            let given = request
                .amount
                .clone()
                .filter(|m| !m.amount.trim().is_empty());
            let amount = given
                .as_ref()
                .and_then(|m| money("amount", &m.amount, &m.currency, &mut v));
            v.into_result()?;
            let due_on = due_on.unwrap_or(today);
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "invoice",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let invoice = store::find_invoice(&mut tx, tenant, &scope(&caller), id, false)
                    .await?
                    .ok_or_else(|| Error::not_found("invoice", id))?;
                return Ok(CreateInvoiceResponse {
                    invoice: Some(invoice),
                });
            }
            // Locked: invoicing one order is serialised, so two invoices
            // cannot both take what is left of it.
            let order = store::find_order(&mut tx, tenant, &scope(&caller), order_id, true)
                .await?
                .ok_or_else(|| Error::not_found("order", order_id))?;
            let total = decimal(&order.total);
            let currency = order
                .total
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default();
            let open = total - store::invoiced_total(&mut tx, tenant, order_id).await?;
            let amount = match amount {
                Some((_, c)) if c != currency => {
                    return Err(Error::invalid(
                        "amount.currency",
                        format!("must be the order's currency {currency}"),
                    ));
                }
                Some((amount, _)) => amount,
                None => open,
            };
            if amount <= Decimal::ZERO {
                return Err(Error::FailedPrecondition(
                    "the order is fully invoiced".into(),
                ));
            }
            if amount > open {
                return Err(Error::invalid(
                    "amount",
                    format!("exceeds what is left to invoice on the order ({open})"),
                ));
            }
            let invoice = store::insert_invoice(
                &mut tx,
                tenant,
                &order,
                amount,
                &currency,
                issued_on,
                due_on,
                &caller.subject,
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "invoice",
                &request.request_id,
                &fingerprint,
                parse_id("invoice.id", &invoice.id)?,
            )
            .await?;
            let event = InvoiceIssued {
                invoice: Some(invoice.clone()),
            };
            let id = parse_id("invoice.id", &invoice.id)?;
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&invoice.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(CreateInvoiceResponse {
                invoice: Some(invoice),
            })
        })
        .await
    }

    async fn list_invoices(
        &self,
        request: Request<ListInvoicesRequest>,
    ) -> Result<Response<ListInvoicesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let order = optional_id("order_id", &request.order_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let status = match InvoiceStatus::try_from(request.status) {
                Ok(InvoiceStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known status")),
            };
            let mut tx = self.0.begin(&caller).await?;
            Ok(ListInvoicesResponse {
                invoices: store::list_invoices(
                    &mut tx,
                    caller.tenant_id,
                    &scope(&caller),
                    order,
                    status,
                )
                .await?,
            })
        })
        .await
    }

    async fn record_payment(
        &self,
        request: Request<RecordPaymentRequest>,
    ) -> Result<Response<RecordPaymentResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&RecordPaymentRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut payment = request
                .payment
                .ok_or_else(|| Error::invalid("payment", "is required"))?;
            let invoice_id = parse_id("payment.invoice_id", &payment.invoice_id)?;
            let mut v = Violations::new();
            let given = payment.amount.clone().unwrap_or_default();
            let amount = money("payment.amount", &given.amount, &given.currency, &mut v);
            let received_on = date("payment.received_on", &payment.received_on, &mut v)
                .unwrap_or_else(|| Utc::now().date_naive());
            v.check(text("payment.method", &mut payment.method, 50));
            v.check(text("payment.reference", &mut payment.reference, 200));
            if amount.as_ref().is_some_and(|(a, _)| a.is_zero()) {
                v.add("payment.amount.amount", "must be above zero");
            }
            v.into_result()?;
            let Some((amount, currency)) = amount else {
                return Err(Error::invalid("payment.amount", "is required"));
            };
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "payment",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                // A retry: the payment the first call recorded, not a second one.
                let invoice =
                    store::find_invoice(&mut tx, tenant, &scope(&caller), invoice_id, false)
                        .await?
                        .ok_or_else(|| Error::not_found("invoice", invoice_id))?;
                let payment = store::find_payment(&mut tx, tenant, id)
                    .await?
                    .ok_or_else(|| Error::not_found("payment", id))?;
                return Ok(RecordPaymentResponse {
                    payment: Some(payment),
                    invoice: Some(invoice),
                });
            }
            let invoice = store::find_invoice(&mut tx, tenant, &scope(&caller), invoice_id, true)
                .await?
                .ok_or_else(|| Error::not_found("invoice", invoice_id))?;
            let invoice_currency = invoice
                .amount
                .as_ref()
                .map(|m| m.currency.clone())
                .unwrap_or_default();
            if currency != invoice_currency {
                return Err(Error::invalid(
                    "payment.amount.currency",
                    format!("must be the invoice's currency {invoice_currency}"),
                ));
            }
            let open = decimal(&invoice.amount) - decimal(&invoice.paid);
            if amount > open {
                return Err(Error::invalid(
                    "payment.amount.amount",
                    format!("exceeds the open amount {open}"),
                ));
            }
            let recorded = store::insert_payment(
                &mut tx,
                tenant,
                &payment,
                amount,
                &currency,
                received_on,
                &caller.subject,
            )
            .await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "payment",
                &request.request_id,
                &fingerprint,
                parse_id("payment.id", &recorded.id)?,
            )
            .await?;
            let invoice =
                store::apply_payment(&mut tx, tenant, invoice_id, amount, &caller.subject).await?;
            let event = PaymentRecorded {
                payment: Some(recorded.clone()),
                invoice: Some(invoice.clone()),
            };
            self.0
                .outbox
                .enqueue(
                    &mut tx,
                    &caller,
                    invoice_id,
                    version_of(&invoice.audit),
                    &event,
                )
                .await?;
            commit(tx).await?;
            Ok(RecordPaymentResponse {
                payment: Some(recorded),
                invoice: Some(invoice),
            })
        })
        .await
    }
}
