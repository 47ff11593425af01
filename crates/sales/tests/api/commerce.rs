//! Products, price books, quotes with approvals, orders, invoices, payments.

use std::time::Duration;

use crm_proto::crm::sales::v1::catalog_service_client::CatalogServiceClient;
use crm_proto::crm::sales::v1::order_service_client::OrderServiceClient;
use crm_proto::crm::sales::v1::quote_service_client::QuoteServiceClient;
use crm_proto::crm::sales::v1::*;
use kit::auth::{BearerToken, Role, Visibility};
use testkit::eventually;
use uuid::Uuid;

use crate::harness::*;

type Authed =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>;

struct Desk {
    catalog: CatalogServiceClient<Authed>,
    quotes: QuoteServiceClient<Authed>,
    orders: OrderServiceClient<Authed>,
}

fn desk(app: &TestApp, roles: &[Role], teams: &[Uuid]) -> (Desk, Client) {
    let user = Uuid::now_v7();
    let bearer = app
        .services
        .bearer(app.tenant, user, roles, Visibility::Team, teams);
    let channel = app.sales_channel();
    let desk = Desk {
        catalog: CatalogServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        quotes: QuoteServiceClient::with_interceptor(channel.clone(), bearer.clone()),
        orders: OrderServiceClient::with_interceptor(channel, bearer),
    };
    (
        desk,
        app.client_in(app.tenant, user, roles, Visibility::Team, teams),
    )
}

fn line(product: &str, quantity: &str, discount: &str, tax: &str) -> QuoteLine {
    QuoteLine {
        product_id: product.into(),
        quantity: quantity.into(),
        discount_percent: discount.into(),
        tax_percent: tax.into(),
        ..Default::default()
    }
}

fn amount(m: &Option<crm_proto::crm::common::v1::Money>) -> &str {
    m.as_ref().map(|m| m.amount.as_str()).unwrap_or_default()
}

#[tokio::test]
async fn quotes_price_exactly_need_approval_above_the_threshold_and_become_paid_orders() {
    let app = TestApp::spawn().await;
    let team = Uuid::now_v7();
    let (mut admin_desk, mut admin) = desk(&app, &[Role::Admin], &[]);
    pipeline(&mut admin).await;
    let product = |sku: &str, name: &str, tax: &str| CreateProductRequest {
        request_id: String::new(),
        product: Some(Product {
            sku: sku.into(),
            name: name.into(),
            tax_percent: tax.into(),
            ..Default::default()
        }),
    };
    let seats = admin_desk
        .catalog
        .create_product(product("SEAT", "Seat", "19"))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let setup = admin_desk
        .catalog
        .create_product(product("SETUP", "Setup", "7"))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let dup = admin_desk
        .catalog
        .create_product(product("seat", "Again", ""))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), tonic::Code::AlreadyExists);
    let book = admin_desk
        .catalog
        .create_price_book(CreatePriceBookRequest {
            request_id: String::new(),
            price_book: Some(PriceBook {
                name: "Euro list".into(),
                currency: "eur".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .price_book
        .unwrap();
    assert!(book.is_default, "the first book is the default");
    let entry = |product: &Product, price: &str| PriceBookEntry {
        price_book_id: book.id.clone(),
        product_id: product.id.clone(),
        list_price: money(price),
    };
    let wrong = admin_desk
        .catalog
        .set_prices(SetPricesRequest {
            price_book_id: book.id.clone(),
            entries: vec![PriceBookEntry {
                list_price: Some(crm_proto::crm::common::v1::Money {
                    amount: "1".into(),
                    currency: "USD".into(),
                }),
                ..entry(&seats, "1")
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&wrong), ["entries[0].list_price.currency"]);
    admin_desk
        .catalog
        .set_prices(SetPricesRequest {
            price_book_id: book.id.clone(),
            entries: vec![entry(&seats, "33.335"), entry(&setup, "0.99")],
        })
        .await
        .unwrap();
    admin_desk
        .quotes
        .set_approval_threshold(SetApprovalThresholdRequest {
            discount_percent: "15".into(),
        })
        .await
        .unwrap();

    // A rep of the team sells; the deal and its quotes belong to the team.
    let (mut rep_desk, mut rep) = desk(&app, &[Role::SalesRep], &[team]);
    let deal = rep
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Seats for Initech".into(),
                amount: money("100"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let quote_of = |lines: Vec<QuoteLine>| CreateQuoteRequest {
        request_id: String::new(),
        quote: Some(Quote {
            opportunity_id: deal.id.clone(),
            lines,
            valid_until: "2099-12-31".into(),
            ..Default::default()
        }),
    };
    let bad = rep_desk
        .quotes
        .create_quote(quote_of(vec![
            line("not-an-id", "1", "", ""),
            line(&seats.id, "0", "120", ""),
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        [
            "quote.lines[0].product_id",
            "quote.lines[1].quantity",
            "quote.lines[1].discount_percent"
        ]
    );
    let small = rep_desk
        .quotes
        .create_quote(quote_of(vec![
            // Tax comes from the products (19% and 7%), whatever is sent.
            line(&seats.id, "3", "10", "0"),
            line(&setup.id, "7", "", ""),
        ]))
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(
        (
            amount(&small.subtotal),
            amount(&small.discount_total),
            amount(&small.tax_total),
            amount(&small.total)
        ),
        ("106.94", "10.01", "17.59", "114.52")
    );
    assert_eq!(amount(&small.lines[0].net), "90.00");
    assert_eq!(small.team_id, team.to_string());
    // 10% is within the 15% threshold: approved on submit.
    let approved = rep_desk
        .quotes
        .submit_quote(SubmitQuoteRequest {
            id: small.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(approved.status, QuoteStatus::Approved as i32);

    // 25% needs a manager of the rep's team.
    let big = rep_desk
        .quotes
        .create_quote(quote_of(vec![line(&seats.id, "10", "25", "19")]))
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    let pending = rep_desk
        .quotes
        .submit_quote(SubmitQuoteRequest { id: big.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(pending.status, QuoteStatus::PendingApproval as i32);
    app.event("sales", "crm.sales.quote.approval_requested.v1", &big.id)
        .await;
    let decide = |approve: bool, comment: &str| DecideQuoteRequest {
        id: big.id.clone(),
        approve,
        comment: comment.into(),
    };
    let denied = rep_desk
        .quotes
        .decide_quote(decide(true, ""))
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        tonic::Code::PermissionDenied,
        "the owner cannot approve"
    );
    let (mut stranger, _) = desk(&app, &[Role::Manager], &[Uuid::now_v7()]);
    let denied = stranger
        .quotes
        .decide_quote(decide(true, ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            denied.code(),
            tonic::Code::PermissionDenied | tonic::Code::NotFound
        ),
        "another team's manager cannot"
    );
    let (mut manager, _) = desk(&app, &[Role::Manager], &[team]);
    let no_reason = manager
        .quotes
        .decide_quote(decide(false, " "))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_reason), ["comment"]);
    let rejected = manager
        .quotes
        .decide_quote(decide(false, "25% is too much"))
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(
        (rejected.status, rejected.approval_comment.as_str()),
        (QuoteStatus::Rejected as i32, "25% is too much")
    );
    app.event("sales", "crm.sales.quote.rejected.v1", &big.id)
        .await;
    // Revised, resubmitted, approved.
    let revised = rep_desk
        .quotes
        .update_quote(UpdateQuoteRequest {
            quote: Some(Quote {
                id: big.id.clone(),
                lines: vec![line(&seats.id, "10", "18", "19")],
                valid_until: "2099-12-31".into(),
                ..Default::default()
            }),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(revised.status, QuoteStatus::Draft as i32);
    rep_desk
        .quotes
        .submit_quote(SubmitQuoteRequest { id: big.id.clone() })
        .await
        .unwrap();
    let ok = manager
        .quotes
        .decide_quote(decide(true, "fine"))
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(ok.status, QuoteStatus::Approved as i32);
    app.event("sales", "crm.sales.quote.approved.v1", &big.id)
        .await;

    // Sent, accepted, ordered (once), invoiced, overdue, paid.
    let early = rep_desk
        .orders
        .create_order(CreateOrderRequest {
            request_id: String::new(),
            quote_id: small.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    rep_desk
        .quotes
        .send_quote(SendQuoteRequest {
            id: small.id.clone(),
        })
        .await
        .unwrap();
    app.event("sales", "crm.sales.quote.sent.v1", &small.id)
        .await;
    let accepted = rep_desk
        .quotes
        .record_customer_decision(RecordCustomerDecisionRequest {
            id: small.id.clone(),
            accepted: true,
        })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(accepted.status, QuoteStatus::Accepted as i32);
    let order_request = CreateOrderRequest {
        request_id: String::new(),
        quote_id: small.id.clone(),
        start_date: "2027-01-01".into(),
        end_date: String::new(),
    };
    let order = rep_desk
        .orders
        .create_order(order_request.clone())
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(
        (
            order.end_date.as_str(),
            order.renewal_date.as_str(),
            amount(&order.total)
        ),
        ("2028-01-01", "2028-01-01", "114.52")
    );
    let again = rep_desk
        .orders
        .create_order(order_request)
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(again.id, order.id, "one order per quote");
    app.event("sales", "crm.sales.order.created.v1", &order.id)
        .await;

    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let invoice = rep_desk
        .orders
        .create_invoice(CreateInvoiceRequest {
            request_id: String::new(),
            order_id: order.id.clone(),
            amount: money("100"),
            issued_on: "2027-01-01".into(),
            due_on: yesterday.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&invoice), ["due_on"], "due before issue");
    let invoice = rep_desk
        .orders
        .create_invoice(CreateInvoiceRequest {
            request_id: String::new(),
            order_id: order.id.clone(),
            amount: money("100"),
            issued_on: yesterday.clone(),
            due_on: yesterday.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    let too_much = rep_desk
        .orders
        .create_invoice(CreateInvoiceRequest {
            request_id: String::new(),
            order_id: order.id.clone(),
            amount: money("20"),
            issued_on: String::new(),
            due_on: "2099-01-01".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&too_much), ["amount"]);
    let rest = rep_desk
        .orders
        .create_invoice(CreateInvoiceRequest {
            request_id: String::new(),
            order_id: order.id.clone(),
            amount: None,
            issued_on: String::new(),
            due_on: "2099-01-01".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap();
    assert_eq!(amount(&rest.amount), "14.52", "the rest of the order");

    // The scanner reports the past-due one, once.
    let event = app
        .event("sales", "crm.sales.invoice.overdue.v1", &invoice.id)
        .await;
    let overdue: InvoiceOverdue = prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(overdue.days_overdue, 1);
    let orders = rep_desk.orders.clone();
    eventually("the invoice shows overdue", Duration::from_secs(10), || {
        let mut orders = orders.clone();
        let order_id = order.id.clone();
        async move {
            let invoices = orders
                .list_invoices(ListInvoicesRequest {
                    order_id,
                    status: InvoiceStatus::Overdue as i32,
                })
                .await
                .ok()?
                .into_inner()
                .invoices;
            (invoices.len() == 1).then_some(())
        }
    })
    .await;

    let pay = |value: &str| RecordPaymentRequest {
        request_id: String::new(),
        payment: Some(Payment {
            invoice_id: invoice.id.clone(),
            amount: money(value),
            method: "transfer".into(),
            ..Default::default()
        }),
    };
    let part = rep_desk
        .orders
        .record_payment(pay("60"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&part.invoice.unwrap().paid), "60.00");
    let over = rep_desk
        .orders
        .record_payment(pay("40.01"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&over), ["payment.amount.amount"]);
    let full = rep_desk
        .orders
        .record_payment(pay("40"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.invoice.unwrap().status, InvoiceStatus::Paid as i32);
    app.event("sales", "crm.sales.payment.recorded.v1", &invoice.id)
        .await;
}

/// A rep cannot slip a discount past approval by lowering the price: a
/// price other than the list price needs the pricing permission, and a
/// manager's lowered price is weighed as the discount it is.
#[tokio::test]
async fn a_lowered_unit_price_is_refused_to_reps_and_needs_approval_as_a_discount() {
    let app = TestApp::spawn().await;
    let team = Uuid::now_v7();
    let (mut admin_desk, mut admin) = desk(&app, &[Role::Admin], &[]);
    pipeline(&mut admin).await;
    let seats = admin_desk
        .catalog
        .create_product(CreateProductRequest {
            request_id: String::new(),
            product: Some(Product {
                sku: "SEAT".into(),
                name: "Seat".into(),
                tax_percent: "19".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    let bad_tax = admin_desk
        .catalog
        .create_product(CreateProductRequest {
            request_id: String::new(),
            product: Some(Product {
                sku: "X".into(),
                name: "X".into(),
                tax_percent: "101".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_tax), ["product.tax_percent"]);
    let book = admin_desk
        .catalog
        .create_price_book(CreatePriceBookRequest {
            request_id: String::new(),
            price_book: Some(PriceBook {
                name: "Euro".into(),
                currency: "EUR".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .price_book
        .unwrap();
    admin_desk
        .catalog
        .set_prices(SetPricesRequest {
            price_book_id: book.id.clone(),
            entries: vec![PriceBookEntry {
                price_book_id: book.id.clone(),
                product_id: seats.id.clone(),
                list_price: money("100"),
            }],
        })
        .await
        .unwrap();
    admin_desk
        .quotes
        .set_approval_threshold(SetApprovalThresholdRequest {
            discount_percent: "15".into(),
        })
        .await
        .unwrap();
    let (mut rep_desk, mut rep) = desk(&app, &[Role::SalesRep], &[team]);
    let deal = rep
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Seats".into(),
                amount: money("100"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let cheap = |price: &str| CreateQuoteRequest {
        request_id: String::new(),
        quote: Some(Quote {
            opportunity_id: deal.id.clone(),
            lines: vec![QuoteLine {
                unit_price: money(price),
                tax_percent: "0".into(),
                ..line(&seats.id, "10", "0", "0")
            }],
            ..Default::default()
        }),
    };
    let refused = rep_desk
        .quotes
        .create_quote(cheap("0.01"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    // The list price itself may be restated by anyone.
    let listed = rep_desk.quotes.create_quote(cheap("100")).await.unwrap();
    let listed = listed.into_inner().quote.unwrap();
    assert_eq!(
        amount(&listed.tax_total),
        "190.00",
        "the product's 19%, not the caller's 0%"
    );

    // A manager of the team may set a price; 0.01 of 100 is a 99.99% discount.
    let (mut manager_desk, _) = desk(&app, &[Role::Manager], &[team]);
    let lowered = manager_desk
        .quotes
        .create_quote(cheap("0.01"))
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(lowered.max_discount_percent, "99.99");
    let submitted = manager_desk
        .quotes
        .submit_quote(SubmitQuoteRequest {
            id: lowered.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    assert_eq!(submitted.status, QuoteStatus::PendingApproval as i32);

    // A manager's own deal and quote: someone else decides.
    let (mut boss_desk, mut boss) = desk(&app, &[Role::Manager], &[team]);
    let own_deal = boss
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Manager's own".into(),
                amount: money("100"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let own = boss_desk
        .quotes
        .create_quote(CreateQuoteRequest {
            request_id: String::new(),
            quote: Some(Quote {
                opportunity_id: own_deal.id.clone(),
                lines: vec![line(&seats.id, "1", "40", "")],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .quote
        .unwrap();
    boss_desk
        .quotes
        .submit_quote(SubmitQuoteRequest { id: own.id.clone() })
        .await
        .unwrap();
    let self_approval = boss_desk
        .quotes
        .decide_quote(DecideQuoteRequest {
            id: own.id.clone(),
            approve: true,
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        self_approval.code(),
        tonic::Code::PermissionDenied,
        "{self_approval:?}"
    );
}
