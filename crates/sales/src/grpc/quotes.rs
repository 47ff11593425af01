//! QuoteService: quotes priced from price books, discount approvals by a
//! manager of the owner's team, sending and the customer's decision.

use chrono::Utc;
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::quote_service_server::QuoteService;
use crm_proto::crm::sales::v1::*;
use kit::auth::{CallerContext, Role};
use kit::error::Violations;
use kit::input::{optional_date, plain_decimal};
use kit::paging::{finish_page, Page};
use kit::Error;
use rust_decimal::Decimal;
use sqlx::PgConnection;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{check_version, commit, handle, page_response, version_of, SharedState};
use crate::domain::access::{authorize, scope, Action};
use crate::domain::{optional_id, parse_id, quote as pricing};
use crate::store::commerce::{self as store, QuoteValues};
use crate::store::opportunities;

pub struct QuoteHandlers(pub SharedState);

fn status_name(status: i32) -> String {
    QuoteStatus::try_from(status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("QUOTE_STATUS_")
                .to_lowercase()
        })
        .unwrap_or_default()
}

fn wrong_status(quote: &Quote, action: &str) -> Error {
    Error::FailedPrecondition(format!(
        "a {} quote cannot be {action}",
        status_name(quote.status)
    ))
}

/// Fills in list prices and the products' tax rates, prices every line and
/// checks the validity date. A price other than the list price needs the
/// pricing permission; approval weighs the effective discount against the
/// list price, so a lowered price is a discount like any other.
async fn price_quote(
    tx: &mut PgConnection,
    caller: &CallerContext,
    quote: &mut Quote,
    book: &PriceBook,
) -> kit::Result<(pricing::Totals, Option<chrono::NaiveDate>)> {
    let tenant = caller.tenant_id;
    let mut v = Violations::new();
    let book_id = Uuid::parse_str(&book.id).map_err(|e| Error::Internal(e.into()))?;
    if quote.lines.is_empty() || quote.lines.len() > 200 {
        v.add("quote.lines", "must hold 1 to 200 lines");
    }
    let may_set_prices = caller.has_role(Role::Manager) || caller.has_role(Role::Admin);
    let mut list_prices = Vec::with_capacity(quote.lines.len());
    for (i, line) in quote.lines.iter_mut().enumerate() {
        let at = format!("quote.lines[{i}]");
        let Some(product) = v.check(crate::domain::required_id(
            &format!("{at}.product_id"),
            &line.product_id,
        )) else {
            list_prices.push(None);
            continue;
        };
        match store::product(tx, tenant, product).await? {
            Some(p) if p.active => line.tax_percent = p.tax_percent,
            Some(_) => v.add(format!("{at}.product_id"), "the product is retired"),
            None => v.add(format!("{at}.product_id"), "no such product"),
        }
        let list = store::list_price(tx, tenant, book_id, product).await?;
        list_prices.push(list);
        let given = line
            .unit_price
            .as_ref()
            .and_then(|p| (!p.amount.trim().is_empty()).then(|| plain_decimal(p.amount.trim())));
        match (given, list) {
            (None, Some(list)) => {
                line.unit_price = Some(Money {
                    amount: list.normalize().to_string(),
                    currency: book.currency.clone(),
                })
            }
            (None, None) if !may_set_prices => v.add(
                format!("{at}.unit_price"),
                "the price book has no price for this product; ask a manager to price it",
            ),
            (None, None) => v.add(
                format!("{at}.unit_price"),
                "the price book has no price for this product; give one",
            ),
            (Some(price), list) if !may_set_prices && price != list => {
                return Err(Error::PermissionDenied(format!(
                    "{at}.unit_price: only managers and admins may quote another price than the list price; give a discount instead"
                )));
            }
            (Some(_), _) => {}
        }
    }
    let totals = pricing::price(&mut quote.lines, &list_prices, &book.currency, &mut v);
    let valid_until = v
        .check(optional_date("quote.valid_until", &quote.valid_until))
        .flatten();
    if valid_until.is_some_and(|d| d < Utc::now().date_naive()) {
        v.add("quote.valid_until", "must not be in the past");
    }
    v.into_result()?;
    Ok((totals, valid_until))
}

async fn visible(
    tx: &mut PgConnection,
    caller: &CallerContext,
    id: Uuid,
    lock: bool,
) -> kit::Result<Quote> {
    store::find_quote(tx, caller.tenant_id, &scope(caller), id, lock)
        .await?
        .ok_or_else(|| Error::not_found("quote", id))
}

pub fn currency_of(quote: &Quote) -> String {
    quote
        .total
        .as_ref()
        .map(|m| m.currency.clone())
        .unwrap_or_default()
}

pub fn decimal(m: &Option<Money>) -> Decimal {
    m.as_ref()
        .and_then(|m| plain_decimal(&m.amount))
        .unwrap_or_default()
}

fn totals_of(quote: &Quote) -> pricing::Totals {
    pricing::Totals {
        subtotal: decimal(&quote.subtotal),
        discount: decimal(&quote.discount_total),
        tax: decimal(&quote.tax_total),
        total: decimal(&quote.total),
        max_discount: plain_decimal(&quote.max_discount_percent).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl QuoteService for QuoteHandlers {
    async fn set_approval_threshold(
        &self,
        request: Request<SetApprovalThresholdRequest>,
    ) -> Result<Response<SetApprovalThresholdResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Configure)?;
            let threshold = plain_decimal(request.discount_percent.trim())
                .filter(|d| !d.is_sign_negative() && *d <= Decimal::ONE_HUNDRED)
                .ok_or_else(|| {
                    Error::invalid("discount_percent", "must be a percentage from 0 to 100")
                })?;
            let mut tx = self.0.begin(&caller).await?;
            store::set_approval_threshold(&mut tx, caller.tenant_id, threshold).await?;
            commit(tx).await?;
            Ok(SetApprovalThresholdResponse {
                discount_percent: threshold.normalize().to_string(),
            })
        })
        .await
    }

    async fn create_quote(
        &self,
        request: Request<CreateQuoteRequest>,
    ) -> Result<Response<CreateQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let fingerprint = kit::idempotency::fingerprint(&CreateQuoteRequest {
                request_id: String::new(),
                ..request.clone()
            });
            let mut quote = request
                .quote
                .ok_or_else(|| Error::invalid("quote", "is required"))?;
            let opportunity_id = parse_id("quote.opportunity_id", &quote.opportunity_id)?;
            let book_id = optional_id("quote.price_book_id", &quote.price_book_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let replayed = kit::idempotency::replayed(
                &mut tx,
                tenant,
                "quote",
                &request.request_id,
                &fingerprint,
            )
            .await?;
            if let Some(id) = replayed {
                let quote = store::find_quote(&mut tx, tenant, &scope(&caller), id, false)
                    .await?
                    .ok_or_else(|| Error::not_found("quote", id))?;
                return Ok(CreateQuoteResponse { quote: Some(quote) });
            }
            let opportunity =
                opportunities::find(&mut tx, tenant, &scope(&caller), opportunity_id, false)
                    .await?
                    .ok_or_else(|| Error::invalid("quote.opportunity_id", "no such opportunity"))?;
            let book = store::price_book(&mut tx, tenant, book_id)
                .await?
                .ok_or_else(|| match book_id {
                    Some(_) => Error::invalid("quote.price_book_id", "no such price book"),
                    None => Error::FailedPrecondition(
                        "the tenant has no default price book; create one first".into(),
                    ),
                })?;
            let (totals, valid_until) = price_quote(&mut tx, &caller, &mut quote, &book).await?;
            quote.price_book_id = book.id.clone();
            quote.status = QuoteStatus::Draft as i32;
            quote.owner_id = opportunity.owner_id.clone();
            quote.team_id = opportunity.team_id.clone();
            let values = QuoteValues {
                quote: &quote,
                currency: &book.currency,
                valid_until,
                totals: &totals,
            };
            let id = Uuid::now_v7();
            let created =
                store::insert_quote(&mut tx, tenant, id, &values, &caller.subject).await?;
            kit::idempotency::remember(
                &mut tx,
                tenant,
                "quote",
                &request.request_id,
                &fingerprint,
                id,
            )
            .await?;
            commit(tx).await?;
            Ok(CreateQuoteResponse {
                quote: Some(created),
            })
        })
        .await
    }

    async fn get_quote(
        &self,
        request: Request<GetQuoteRequest>,
    ) -> Result<Response<GetQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            Ok(GetQuoteResponse {
                quote: Some(visible(&mut tx, &caller, id, false).await?),
            })
        })
        .await
    }

    async fn update_quote(
        &self,
        request: Request<UpdateQuoteRequest>,
    ) -> Result<Response<UpdateQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let input = request
                .quote
                .ok_or_else(|| Error::invalid("quote", "is required"))?;
            let id = parse_id("quote.id", &input.id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let mut quote = visible(&mut tx, &caller, id, true).await?;
            check_version(
                "quote",
                &input.id,
                request.expected_version,
                version_of(&quote.audit),
            )?;
            if ![QuoteStatus::Draft as i32, QuoteStatus::Rejected as i32].contains(&quote.status) {
                return Err(wrong_status(
                    &quote,
                    "changed; only drafts and rejected quotes are revised",
                ));
            }
            let book_id = Uuid::parse_str(&quote.price_book_id).ok();
            let book = store::price_book(&mut tx, tenant, book_id)
                .await?
                .ok_or_else(|| Error::not_found("price book", &quote.price_book_id))?;
            quote.lines = input.lines;
            quote.valid_until = input.valid_until;
            quote.status = QuoteStatus::Draft as i32;
            let (totals, valid_until) = price_quote(&mut tx, &caller, &mut quote, &book).await?;
            let values = QuoteValues {
                quote: &quote,
                currency: &book.currency,
                valid_until,
                totals: &totals,
            };
            let saved =
                store::update_quote_lines(&mut tx, tenant, &values, &caller.subject).await?;
            commit(tx).await?;
            Ok(UpdateQuoteResponse { quote: Some(saved) })
        })
        .await
    }

    async fn list_quotes(
        &self,
        request: Request<ListQuotesRequest>,
    ) -> Result<Response<ListQuotesResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            let opportunity = optional_id("opportunity_id", &request.opportunity_id)
                .map_err(|v| Error::InvalidArgument(vec![v]))?;
            let status = match QuoteStatus::try_from(request.status) {
                Ok(QuoteStatus::Unspecified) => None,
                Ok(s) => Some(s as i16),
                Err(_) => return Err(Error::invalid("status", "is not a known status")),
            };
            let page = Page::<Uuid>::from_request(request.page.as_ref())?;
            let mut tx = self.0.begin(&caller).await?;
            let rows = store::list_quotes(
                &mut tx,
                caller.tenant_id,
                &scope(&caller),
                opportunity,
                status,
                page.after,
                page.fetch_limit(),
            )
            .await?;
            let (quotes, next) = finish_page(rows, page.size, |q: &Quote| {
                Uuid::parse_str(&q.id).unwrap_or_default()
            });
            Ok(ListQuotesResponse {
                quotes,
                page: page_response(next),
            })
        })
        .await
    }

    async fn submit_quote(
        &self,
        request: Request<SubmitQuoteRequest>,
    ) -> Result<Response<SubmitQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let quote = visible(&mut tx, &caller, id, true).await?;
            if quote.status != QuoteStatus::Draft as i32 {
                return Err(wrong_status(&quote, "submitted"));
            }
            let threshold = store::approval_threshold(&mut tx, tenant).await?;
            let needs_approval = totals_of(&quote).max_discount > threshold;
            let status = if needs_approval {
                QuoteStatus::PendingApproval
            } else {
                QuoteStatus::Approved
            };
            let saved =
                store::set_quote_status(&mut tx, tenant, id, status as i32, None, &caller.subject)
                    .await?;
            let version = version_of(&saved.audit);
            if needs_approval {
                let event = QuoteApprovalRequested {
                    quote_id: saved.id.clone(),
                    owner_id: saved.owner_id.clone(),
                    team_id: saved.team_id.clone(),
                    max_discount_percent: saved.max_discount_percent.clone(),
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            } else {
                let event = QuoteApproved {
                    quote_id: saved.id.clone(),
                    decided_by: "auto: within the discount threshold".into(),
                    comment: String::new(),
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            commit(tx).await?;
            Ok(SubmitQuoteResponse { quote: Some(saved) })
        })
        .await
    }

    async fn decide_quote(
        &self,
        request: Request<DecideQuoteRequest>,
    ) -> Result<Response<DecideQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Read)?;
            // Who may decide at all is known before the request is read;
            // which team's manager is checked once the quote is loaded.
            if !(caller.has_role(Role::Manager) || caller.has_role(Role::Admin))
                || caller.lacks_scope("sales:write")
            {
                return Err(Error::PermissionDenied(
                    "only a manager of the quote owner's team may decide on it".into(),
                ));
            }
            let id = parse_id("id", &request.id)?;
            let comment = request.comment.trim().to_owned();
            if !request.approve && comment.is_empty() {
                return Err(Error::invalid("comment", "is required when rejecting"));
            }
            if comment.chars().count() > 1000 {
                return Err(Error::invalid("comment", "is longer than 1000 characters"));
            }
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let quote = visible(&mut tx, &caller, id, true).await?;
            // A manager of the owner's team decides; admins may stand in.
            let owner_team = Uuid::parse_str(&quote.team_id).ok();
            let managers_team = caller.has_role(Role::Manager)
                && owner_team.is_some_and(|t| caller.teams.contains(&t));
            if !(managers_team || caller.has_role(Role::Admin)) || caller.lacks_scope("sales:write")
            {
                return Err(Error::PermissionDenied(
                    "only a manager of the quote owner's team may decide on it".into(),
                ));
            }
            if caller
                .user_id
                .is_some_and(|me| quote.owner_id == me.to_string())
            {
                return Err(Error::PermissionDenied(
                    "nobody decides on their own quote".into(),
                ));
            }
            if quote.status != QuoteStatus::PendingApproval as i32 {
                return Err(wrong_status(&quote, "approved or rejected"));
            }
            let status = if request.approve {
                QuoteStatus::Approved
            } else {
                QuoteStatus::Rejected
            };
            let saved = store::set_quote_status(
                &mut tx,
                tenant,
                id,
                status as i32,
                Some((&caller.subject, &comment)),
                &caller.subject,
            )
            .await?;
            let version = version_of(&saved.audit);
            if request.approve {
                let event = QuoteApproved {
                    quote_id: saved.id.clone(),
                    decided_by: caller.subject.clone(),
                    comment,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            } else {
                let event = QuoteRejected {
                    quote_id: saved.id.clone(),
                    decided_by: caller.subject.clone(),
                    comment,
                    by_customer: false,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            commit(tx).await?;
            Ok(DecideQuoteResponse { quote: Some(saved) })
        })
        .await
    }

    async fn send_quote(
        &self,
        request: Request<SendQuoteRequest>,
    ) -> Result<Response<SendQuoteResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let mut tx = self.0.begin(&caller).await?;
            let quote = visible(&mut tx, &caller, id, true).await?;
            if quote.status != QuoteStatus::Approved as i32 {
                return Err(wrong_status(&quote, "sent; it must be approved first"));
            }
            let saved = store::set_quote_status(
                &mut tx,
                caller.tenant_id,
                id,
                QuoteStatus::Sent as i32,
                None,
                &caller.subject,
            )
            .await?;
            let event = QuoteSent {
                quote: Some(saved.clone()),
            };
            self.0
                .outbox
                .enqueue(&mut tx, &caller, id, version_of(&saved.audit), &event)
                .await?;
            commit(tx).await?;
            Ok(SendQuoteResponse { quote: Some(saved) })
        })
        .await
    }

    async fn record_customer_decision(
        &self,
        request: Request<RecordCustomerDecisionRequest>,
    ) -> Result<Response<RecordCustomerDecisionResponse>, Status> {
        handle(request, |caller, request| async move {
            authorize(&caller, Action::Write)?;
            let id = parse_id("id", &request.id)?;
            let tenant = caller.tenant_id;
            let mut tx = self.0.begin(&caller).await?;
            let quote = visible(&mut tx, &caller, id, true).await?;
            if quote.status != QuoteStatus::Sent as i32 {
                return Err(wrong_status(
                    &quote,
                    "accepted or rejected by the customer; it must be sent first",
                ));
            }
            let expired = optional_date("valid_until", &quote.valid_until)
                .ok()
                .flatten()
                .is_some_and(|d| d < Utc::now().date_naive());
            if expired && request.accepted {
                store::set_quote_status(
                    &mut tx,
                    tenant,
                    id,
                    QuoteStatus::Expired as i32,
                    None,
                    &caller.subject,
                )
                .await?;
                commit(tx).await?;
                return Err(Error::FailedPrecondition(
                    "the quote expired before it was accepted".into(),
                ));
            }
            let status = if request.accepted {
                QuoteStatus::Accepted
            } else {
                QuoteStatus::Rejected
            };
            let saved =
                store::set_quote_status(&mut tx, tenant, id, status as i32, None, &caller.subject)
                    .await?;
            let version = version_of(&saved.audit);
            if request.accepted {
                self.0
                    .outbox
                    .enqueue(
                        &mut tx,
                        &caller,
                        id,
                        version,
                        &QuoteAccepted {
                            quote: Some(saved.clone()),
                        },
                    )
                    .await?;
            } else {
                let event = QuoteRejected {
                    quote_id: saved.id.clone(),
                    decided_by: caller.subject.clone(),
                    comment: String::new(),
                    by_customer: true,
                };
                self.0
                    .outbox
                    .enqueue(&mut tx, &caller, id, version, &event)
                    .await?;
            }
            commit(tx).await?;
            Ok(RecordCustomerDecisionResponse { quote: Some(saved) })
        })
        .await
    }
}
