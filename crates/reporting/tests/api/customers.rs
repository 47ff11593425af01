//! Customer analytics on a known data set: accounts, activities and a
//! complaint through the real customers and service desk services, and
//! orders, invoices and payments published as sales publishes them (dated
//! in the past, which the real sales service cannot do). Every figure is
//! worked out by hand from the data below; reporting's clock stands at
//! 2026-06-15 12:00 UTC and is moved to see time alone change a risk.

use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_proto::crm::common::v1::{Audit, Money};
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::reporting::v1::dashboard_service_client::DashboardServiceClient;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::servicedesk::v1 as desk;
use kit::auth::{Role, Visibility};
use kit::time::to_timestamp;
use uuid::Uuid;

use crate::harness::{violated_fields, Client, TestApp};

fn eur(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: "EUR".into(),
    })
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-15T12:00:00Z")
        .expect("a time")
        .with_timezone(&Utc)
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(days)
}

async fn account(admin: &mut Client, name: &str, region: &str, owner: Uuid) -> customers::Account {
    admin
        .accounts
        .create_account(customers::CreateAccountRequest {
            account: Some(customers::Account {
                name: name.into(),
                industry: "Retail".into(),
                owner_id: owner.to_string(),
                address: Some(customers::Address {
                    region: region.into(),
                    country: "de".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
}

/// An order of `total` euros for `account`, `days` before the clock.
async fn order(app: &TestApp, account: &str, days: i64, total: &str) -> String {
    let id = Uuid::now_v7();
    let event = sales::OrderCreated {
        order: Some(sales::Order {
            id: id.to_string(),
            status: sales::OrderStatus::Active as i32,
            total: eur(total),
            audit: Some(Audit {
                created_at: Some(to_timestamp(days_ago(days))),
                ..Default::default()
            }),
            ..Default::default()
        }),
        account_id: account.into(),
        contact_ids: Vec::new(),
    };
    app.services.publish(app.tenant, id, &event).await;
    id.to_string()
}

fn invoice(
    order: &str,
    id: Uuid,
    amount: &str,
    paid: &str,
    issued: &str,
    due: &str,
) -> sales::Invoice {
    sales::Invoice {
        id: id.to_string(),
        order_id: order.into(),
        amount: eur(amount),
        paid: eur(paid),
        issued_on: issued.into(),
        due_on: due.into(),
        ..Default::default()
    }
}

/// The churn_risk.changed event that put `account` at `level`, once
/// published.
async fn churn_event(app: &TestApp, account: &str, level: &str) -> ChurnRiskChanged {
    testkit::eventually(
        &format!("churn risk {level} published"),
        Duration::from_secs(30),
        || async move {
            app.services
                .events("reporting", "crm.reporting.churn_risk.changed.v1", 1)
                .await
                .iter()
                .filter(|e| e.subject == account)
                .filter_map(|e| kit::events::decode_data::<ChurnRiskChanged>(e).ok())
                .find(|c| c.level == level)
        },
    )
    .await
}

async fn dashboard(
    client: &mut Client,
    request: GetCustomerDashboardRequest,
) -> Result<CustomerDashboard, tonic::Status> {
    client
        .dashboards
        .get_customer_dashboard(request)
        .await
        .map(|r| r.into_inner().dashboard.expect("dashboard"))
}

async fn insights(client: &mut Client, account: &str) -> Result<AccountInsights, tonic::Status> {
    client
        .dashboards
        .get_account_insights(GetAccountInsightsRequest {
            account_id: account.into(),
        })
        .await
        .map(|r| r.into_inner().insights.expect("insights"))
}

#[tokio::test]
async fn rfm_cohorts_lifetime_value_churn_and_credit_on_a_known_data_set() {
    let clock = kit::clock::Clock::manual(now());
    let app = TestApp::spawn_at(clock.clone()).await;
    let mut admin = app.admin();
    let (ana, ben) = (Uuid::now_v7(), Uuid::now_v7());
    let a = account(&mut admin, "Alpha", "North", ana).await;
    let b = account(&mut admin, "Bravo", "North", ana).await;
    let c = account(&mut admin, "Charlie", "South", ben).await;
    let d = account(&mut admin, "Delta", "South", ben).await;
    let e = account(&mut admin, "Echo", "West", ben).await;

    // Orders (days before the clock, euros):
    //   A: 5, 20, 40, 60 (100 each)  R 5   F 4  M 400
    //   B: 10, 200 (500 each)        R 10  F 2  M 1000
    //   C: 30 (50)                   R 30  F 1  M 50
    //   D: 100, 150, 300 (200 each)  R 100 F 3  M 600
    //   E: 400 (1000)                R 400 F 0  M 0 (outside the 365 days)
    for days in [5, 20, 40, 60] {
        order(&app, &a.id, days, "100").await;
    }
    let b_first = order(&app, &b.id, 10, "500").await;
    order(&app, &b.id, 200, "500").await;
    order(&app, &c.id, 30, "50").await;
    for days in [100, 150, 300] {
        order(&app, &d.id, days, "200").await;
    }
    order(&app, &e.id, 400, "1000").await;

    // B's invoices: one paid in 19 days on time, one in 40 days after its
    // due date, one 45 days overdue.
    let (on_time, late, open) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (id, amount, issued, due) in [
        (on_time, "500", "2026-04-01", "2026-05-01"),
        (late, "300", "2026-05-01", "2026-05-31"),
        (open, "200", "2026-04-01", "2026-05-01"),
    ] {
        let issued = sales::InvoiceIssued {
            invoice: Some(invoice(&b_first, id, amount, "0", issued, due)),
        };
        app.services.publish(app.tenant, id, &issued).await;
    }
    for (id, amount, issued, due, received) in [
        (on_time, "500", "2026-04-01", "2026-05-01", "2026-04-20"),
        (late, "300", "2026-05-01", "2026-05-31", "2026-06-10"),
    ] {
        let paid = sales::PaymentRecorded {
            payment: Some(sales::Payment {
                id: Uuid::now_v7().to_string(),
                invoice_id: id.to_string(),
                amount: eur(amount),
                received_on: received.into(),
                ..Default::default()
            }),
            invoice: Some(invoice(&b_first, id, amount, amount, issued, due)),
        };
        app.services.publish(app.tenant, id, &paid).await;
    }
    let overdue = sales::InvoiceOverdue {
        invoice: Some(invoice(
            &b_first,
            open,
            "200",
            "0",
            "2026-04-01",
            "2026-05-01",
        )),
        days_overdue: 45,
    };
    app.services.publish(app.tenant, open, &overdue).await;

    // A had two calls 45 days ago and none since (activity fell); E has an
    // open complaint.
    for _ in 0..2 {
        admin
            .activities
            .log_activity(customers::LogActivityRequest {
                activity: Some(customers::Activity {
                    kind: customers::ActivityKind::Call as i32,
                    subject: "Check-in".into(),
                    account_id: a.id.clone(),
                    occurred_at: Some(to_timestamp(days_ago(45))),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("call");
    }
    admin
        .tickets
        .create_ticket(desk::CreateTicketRequest {
            ticket: Some(desk::Ticket {
                subject: "Broken delivery".into(),
                r#type: desk::TicketType::Complaint as i32,
                account_id: e.id.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("complaint");

    let all = testkit::eventually(
        "every order and churn risk is counted",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = dashboard(&mut admin, GetCustomerDashboardRequest::default())
                    .await
                    .ok()?;
                let high = d.churn_levels.iter().find(|c| c.key == "high")?.count;
                let scored: i64 = d.churn_levels.iter().map(|c| c.count).sum();
                let activity = d.at_risk.iter().any(|r| r.score == 60);
                let settled = d.orders == 11 && d.accounts == 5 && high == 1 && scored == 5;
                (settled && activity).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(all.currency, "EUR");
    let row =
        |id: &str, r: i32, f: i64, m: &str, scores: (i32, i32, i32), segment: &str| RfmAccount {
            account_id: id.to_owned(),
            recency_days: r,
            frequency: f,
            monetary: m.to_owned(),
            recency_score: scores.0,
            frequency_score: scores.1,
            monetary_score: scores.2,
            segment: segment.to_owned(),
        };
    assert_eq!(
        all.rfm,
        [
            row(&b.id, 10, 2, "1000.00", (4, 3, 5), "potential_loyalists"),
            row(&d.id, 100, 3, "600.00", (2, 4, 4), "at_risk"),
            row(&a.id, 5, 4, "400.00", (5, 5, 3), "champions"),
            row(&c.id, 30, 1, "50.00", (3, 2, 2), "about_to_sleep"),
            row(&e.id, 400, 0, "0.00", (1, 1, 1), "hibernating"),
        ]
    );
    let segments: Vec<(&str, i64)> = all
        .rfm_segments
        .iter()
        .filter(|s| s.count > 0)
        .map(|s| (s.key.as_str(), s.count))
        .collect();
    assert_eq!(
        segments,
        [
            ("champions", 1),
            ("potential_loyalists", 1),
            ("about_to_sleep", 1),
            ("at_risk", 1),
            ("hibernating", 1)
        ]
    );
    assert_eq!(all.rfm_segments.len(), 10, "every segment is named");

    // Cohorts of the last 12 months (E's first order is older).
    let cohorts: Vec<(&str, i64, Vec<i64>)> = all
        .cohorts
        .iter()
        .map(|c| (c.month.as_str(), c.accounts, c.retained.clone()))
        .collect();
    assert_eq!(
        cohorts,
        [
            ("2025-08", 1, vec![1, 0, 0, 0, 0, 1, 0, 1]),
            ("2025-11", 1, vec![1, 0, 0, 0, 0, 0, 0, 1]),
            ("2026-04", 1, vec![1, 1, 1]),
            ("2026-05", 1, vec![1]),
        ]
    );

    // Lifetime: 11 orders, 3,050 euros, 5 customers.
    assert_eq!(
        (
            all.customers,
            all.revenue.as_str(),
            all.average_order_value.as_str(),
            all.orders_per_customer.as_str(),
            all.lifetime_value.as_str()
        ),
        (5, "3050.00", "277.27", "2.20", "610.00")
    );
    let top: Vec<(&str, i64, &str)> = all
        .top_lifetime_values
        .iter()
        .map(|s| (s.key.as_str(), s.count, s.amount.as_str()))
        .collect();
    assert_eq!(
        top,
        [
            (b.id.as_str(), 2, "1000.00"),
            (e.id.as_str(), 1, "1000.00"),
            (d.id.as_str(), 3, "600.00"),
            (a.id.as_str(), 4, "400.00"),
            (c.id.as_str(), 1, "50.00"),
        ]
    );

    // Churn: E 60 (no order in 400 days, a complaint), D 40 (100 days),
    // A 20 (activity fell), B and C nothing.
    let levels: Vec<(&str, i64)> = all
        .churn_levels
        .iter()
        .map(|c| (c.key.as_str(), c.count))
        .collect();
    assert_eq!(levels, [("low", 3), ("medium", 1), ("high", 1)]);
    let risky: Vec<(&str, i32, &str, Vec<String>)> = all
        .at_risk
        .iter()
        .map(|r| {
            (
                r.account_id.as_str(),
                r.score,
                r.level.as_str(),
                r.reasons.clone(),
            )
        })
        .collect();
    assert_eq!(
        risky,
        [
            (
                e.id.as_str(),
                60,
                "high",
                vec!["no order in 400 days".into(), "1 open complaint".into()]
            ),
            (
                d.id.as_str(),
                40,
                "medium",
                vec!["no order in 100 days".into()]
            ),
        ]
    );
    // The calls come on the customers stream, in their own time.
    let risk = testkit::eventually("Alpha's calls are in", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let id = a.id.clone();
        async move {
            let risk = insights(&mut admin, &id).await.ok()?.churn_risk?;
            (risk.score == 20).then_some(risk)
        }
    })
    .await;
    assert_eq!(
        (risk.score, risk.reasons),
        (
            20,
            vec!["activity fell from 2 to 0 in the last 30 days".to_owned()]
        )
    );
    // E's risk went high: marketing hears it.
    let changed = churn_event(&app, &e.id, "high").await;
    assert_eq!(
        (changed.score, changed.reasons.len()),
        (60, 2),
        "{changed:?}"
    );

    // Credit: B paid one invoice on time and one late, and one is 45 days
    // overdue: C.
    let bravo = insights(&mut admin, &b.id).await.expect("insights");
    assert_eq!(
        (
            bravo.credit_grade.as_str(),
            bravo.invoices,
            bravo.invoices_paid,
            bravo.invoices_paid_late,
            bravo.average_days_to_pay.as_str(),
            bravo.invoices_overdue,
            bravo.overdue_amount.as_str(),
            bravo.currency.as_str()
        ),
        ("C", 3, 2, 1, "29.5", 1, "200.00", "EUR")
    );
    assert_eq!(
        bravo.credit_reasons,
        [
            "1 overdue invoice (200.00 open), the oldest 45 days overdue",
            "1 of 2 invoices paid late"
        ]
    );
    assert_eq!(
        insights(&mut admin, &c.id)
            .await
            .expect("insights")
            .credit_grade,
        "unrated"
    );

    // Ana sees her two accounts only: their RFM among themselves, and
    // not the others' insights.
    let mut rep = app.user(ana, &[Role::SalesRep], Visibility::Own, &[]);
    let hers = dashboard(&mut rep, GetCustomerDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!(
        (hers.accounts, hers.customers, hers.revenue.as_str()),
        (2, 2, "1400.00")
    );
    let regions: Vec<(&str, i64)> = hers
        .by_region
        .iter()
        .map(|c| (c.key.as_str(), c.count))
        .collect();
    assert_eq!(regions, [("North", 2)]);
    let not_hers = insights(&mut rep, &c.id).await.expect_err("not hers");
    assert_eq!(not_hers.code(), tonic::Code::NotFound);
    // A region filter narrows the admin's view; lifecycle is named.
    let south = dashboard(
        &mut admin,
        GetCustomerDashboardRequest {
            region: "South".into(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!(
        (south.accounts, south.orders, south.revenue.as_str()),
        (2, 4, "650.00")
    );

    // Time alone: 100 days later A has not ordered for 105 days.
    clock.advance(chrono::Duration::days(100));
    let changed = churn_event(&app, &a.id, "medium").await;
    assert_eq!(
        (
            changed.level.as_str(),
            changed.previous_level.as_str(),
            changed.reasons
        ),
        ("medium", "low", vec!["no order in 105 days".to_owned()])
    );

    // Another tenant sees none of it; bad input is named; an API key
    // without the reporting scope is refused.
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let nothing = dashboard(&mut stranger, GetCustomerDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!((nothing.accounts, nothing.customers), (0, 0));
    let foreign = insights(&mut stranger, &a.id)
        .await
        .expect_err("another tenant's");
    assert_eq!(foreign.code(), tonic::Code::NotFound);
    let bad = dashboard(
        &mut admin,
        GetCustomerDashboardRequest {
            owner_id: "ana".into(),
            currency: "EURO".into(),
            lookback_days: 5000,
            ..Default::default()
        },
    )
    .await
    .expect_err("bad input");
    assert_eq!(
        violated_fields(&bad),
        ["owner_id", "currency", "lookback_days"]
    );
    let bad = insights(&mut admin, "alpha").await.expect_err("bad id");
    assert_eq!(violated_fields(&bad), ["account_id"]);
    let mut claims = app.services.issuer.claims(
        app.tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
    );
    claims.scopes = vec!["customers:read".into()];
    let key = kit::auth::BearerToken::new(&app.services.issuer.sign(&claims)).expect("a token");
    let mut keyed =
        DashboardServiceClient::with_interceptor(app.services.channel("reporting"), key);
    let refused = keyed
        .get_customer_dashboard(GetCustomerDashboardRequest::default())
        .await
        .expect_err("no reporting scope");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = keyed
        .get_account_insights(GetAccountInsightsRequest {
            account_id: a.id.clone(),
        })
        .await
        .expect_err("no reporting scope");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let others = [
        keyed
            .get_sales_dashboard(GetSalesDashboardRequest::default())
            .await
            .expect_err("no reporting scope"),
        keyed
            .get_marketing_dashboard(GetMarketingDashboardRequest::default())
            .await
            .expect_err("no reporting scope"),
        keyed
            .get_activity_dashboard(GetActivityDashboardRequest::default())
            .await
            .expect_err("no reporting scope"),
    ];
    for refused in others {
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    }
}
