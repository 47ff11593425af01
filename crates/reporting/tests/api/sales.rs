//! The sales and activity dashboards, counted from the events of a scripted
//! history in the real sales and customers services; every figure below
//! is worked out by hand from the script.

use std::time::Duration;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1::*;
use kit::auth::{Role, Visibility};
use uuid::Uuid;

use crate::harness::{violated_fields, Client, TestApp};

fn eur(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: "EUR".into(),
    })
}

fn stage(name: &str, probability: i32, kind: StageKind) -> Stage {
    Stage {
        name: name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    }
}

/// Qualify (10), Propose (50), Negotiate (80), Won, Lost.
async fn pipeline(admin: &mut Client) -> Pipeline {
    admin
        .pipelines
        .create_pipeline(CreatePipelineRequest {
            request_id: String::new(),
            pipeline: Some(Pipeline {
                name: "New business".into(),
                stages: vec![
                    stage("Qualify", 10, StageKind::Open),
                    stage("Propose", 50, StageKind::Open),
                    stage("Negotiate", 80, StageKind::Open),
                    stage("Won", 100, StageKind::Won),
                    stage("Lost", 0, StageKind::Lost),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("pipeline")
        .into_inner()
        .pipeline
        .expect("pipeline")
}

struct Deal<'a> {
    owner: Uuid,
    team: Uuid,
    amount: &'a str,
    close_date: &'a str,
    competitors: &'a [&'a str],
    /// Stages moved through after Qualify, by index; a lost stage with
    /// its reason.
    moves: &'a [usize],
}

async fn deal(admin: &mut Client, p: &Pipeline, account: &str, d: Deal<'_>) -> Opportunity {
    let lines = if d.amount == "1000" {
        vec![LineItem {
            description: "Seats".into(),
            quantity: "2".into(),
            unit_price: eur("500"),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };
    let mut o = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: format!("Deal of {}", d.amount),
                pipeline_id: p.id.clone(),
                account_id: account.into(),
                amount: eur(d.amount),
                close_date: d.close_date.into(),
                owner_id: d.owner.to_string(),
                team_id: d.team.to_string(),
                competitors: d.competitors.iter().map(|c| c.to_string()).collect(),
                line_items: lines,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("deal")
        .into_inner()
        .opportunity
        .expect("deal");
    for &to in d.moves {
        let lost = p.stages[to].kind == StageKind::Lost as i32;
        o = admin
            .opportunities
            .move_stage(MoveStageRequest {
                id: o.id.clone(),
                stage_id: p.stages[to].id.clone(),
                lost_reason: if lost { "Price".into() } else { String::new() },
                expected_version: 0,
            })
            .await
            .expect("moved")
            .into_inner()
            .opportunity
            .expect("deal");
    }
    o
}

async fn sales_dashboard(
    client: &mut Client,
    request: GetSalesDashboardRequest,
) -> Result<SalesDashboard, tonic::Status> {
    client
        .dashboards
        .get_sales_dashboard(request)
        .await
        .map(|r| r.into_inner().dashboard.expect("dashboard"))
}

fn steps(d: &SalesDashboard) -> Vec<(String, i64, String)> {
    d.funnel
        .iter()
        .map(|s| (s.name.clone(), s.reached, s.conversion_percent.clone()))
        .collect()
}

fn sums(sums: &[Sum]) -> Vec<(String, i64, String)> {
    sums.iter()
        .map(|s| (s.key.clone(), s.count, s.amount.clone()))
        .collect()
}

fn today_plus(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .format("%Y-%m-%d")
        .to_string()
}

#[tokio::test]
async fn the_sales_dashboard_follows_a_scripted_deal_history() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (north, south) = (Uuid::now_v7(), Uuid::now_v7());
    let (ana, ben) = (Uuid::now_v7(), Uuid::now_v7());
    let p = pipeline(&mut admin).await;
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    let script = [
        // Ana wins 1,000 over Globex through every stage.
        (
            ana,
            north,
            "1000",
            "2027-01-20",
            &["Globex"][..],
            &[1, 2, 3][..],
        ),
        // Ana loses 2,000 to Globex at Propose, for the price.
        (
            ana,
            north,
            "2000",
            "2027-01-20",
            &["Globex"][..],
            &[1, 4][..],
        ),
        // Ben wins 4,000 straight from Qualify.
        (ben, south, "4000", "2027-01-20", &[][..], &[3][..]),
        // Ben's 3,000 waits in Qualify; Ana's 500 in Propose.
        (ben, south, "3000", "2027-01-15", &[][..], &[][..]),
        (ana, north, "500", "2027-02-10", &[][..], &[1][..]),
    ];
    let mut deals = Vec::new();
    for (owner, team, amount, close_date, competitors, moves) in script {
        let d = Deal {
            owner,
            team,
            amount,
            close_date,
            competitors,
            moves,
        };
        deals.push(deal(&mut admin, &p, &account.id, d).await);
    }
    // Quotas: each team 10,000 and Ana 2,000 around today.
    for (user, team, amount) in [
        (None, Some(north), "10000"),
        (None, Some(south), "10000"),
        (Some(ana), None, "2000"),
    ] {
        admin
            .forecasts
            .set_quota(SetQuotaRequest {
                quota: Some(Quota {
                    user_id: user.map(|u| u.to_string()).unwrap_or_default(),
                    team_id: team.map(|t| t.to_string()).unwrap_or_default(),
                    period_start: today_plus(-60),
                    period_end: today_plus(60),
                    amount: eur(amount),
                }),
            })
            .await
            .expect("quota");
    }

    let all = testkit::eventually(
        "the dashboard has every deal and quota",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = sales_dashboard(&mut admin, GetSalesDashboardRequest::default())
                    .await
                    .ok()?;
                // The last move too: Ana's 500 in Propose (50%) weighs 250.
                let settled = d.won == 2
                    && d.lost == 1
                    && d.open == 2
                    && d.quota == "20000.00"
                    && d.weighted_amount == "550.00";
                settled.then_some(d)
            }
        },
    )
    .await;
    assert_eq!(all.currency, "EUR", "the currency the deals are in");
    assert_eq!(all.pipeline_id, p.id, "the default pipeline");
    let s = |name: &str, reached: i64, conversion: &str| {
        (name.to_owned(), reached, conversion.to_owned())
    };
    assert_eq!(
        steps(&all),
        [
            s("Qualify", 5, "80"),
            s("Propose", 4, "50"),
            s("Negotiate", 2, "100"),
            s("Won", 2, ""),
        ]
    );
    assert_eq!(all.win_rate_percent, "66.7");
    assert_eq!(
        (
            all.won_amount.as_str(),
            all.average_deal_size.as_str(),
            all.open_amount.as_str(),
            all.weighted_amount.as_str()
        ),
        ("5000.00", "2500.00", "3500.00", "550.00")
    );
    assert_eq!(all.average_cycle_days, "0", "won the day they were created");
    let (qualify, propose, negotiate) = (&p.stages[0].id, &p.stages[1].id, &p.stages[2].id);
    let t = |key: &str, count: i64, amount: &str| (key.to_owned(), count, amount.to_owned());
    assert_eq!(
        sums(&all.open_by_stage),
        [
            t(qualify, 1, "3000.00"),
            t(propose, 1, "500.00"),
            t(negotiate, 0, "0.00")
        ]
    );
    assert_eq!(all.open_by_stage[0].label, "Qualify");
    assert_eq!(
        sums(&all.open_by_owner),
        [
            t(&ben.to_string(), 1, "3000.00"),
            t(&ana.to_string(), 1, "500.00")
        ]
    );
    assert_eq!(
        sums(&all.open_by_close_month),
        [t("2027-01", 1, "3000.00"), t("2027-02", 1, "500.00")]
    );
    assert_eq!(
        sums(&all.leaderboard),
        [
            t(&ben.to_string(), 1, "4000.00"),
            t(&ana.to_string(), 1, "1000.00")
        ]
    );
    assert_eq!(sums(&all.won_by_account), [t(&account.id, 2, "5000.00")]);
    assert!(all.won_by_campaign.is_empty());
    assert_eq!(sums(&all.won_by_product), [t("", 1, "1000.00")]);
    assert_eq!(all.won_by_product[0].label, "Seats");
    assert_eq!(
        (all.lost_reasons[0].key.as_str(), all.lost_reasons[0].count),
        ("Price", 1)
    );
    assert_eq!(
        all.competitors,
        [CompetitorRecord {
            competitor: "Globex".into(),
            won: 1,
            lost: 1
        }]
    );
    assert_eq!(
        (all.quota.as_str(), all.attainment_percent.as_str()),
        ("20000.00", "25")
    );
    assert!(all.as_of.is_some());

    // Ana, who sees her own deals only: three deals, one won, one lost;
    // her own quota.
    let mut rep = app.user(ana, &[Role::SalesRep], Visibility::Own, &[north]);
    let hers = sales_dashboard(&mut rep, GetSalesDashboardRequest::default())
        .await
        .expect("dashboard");
    assert_eq!(
        steps(&hers),
        [
            s("Qualify", 3, "100"),
            s("Propose", 3, "33.3"),
            s("Negotiate", 1, "100"),
            s("Won", 1, ""),
        ]
    );
    assert_eq!(
        (hers.won, hers.lost, hers.win_rate_percent.as_str()),
        (1, 1, "50")
    );
    assert_eq!(hers.open_amount, "500.00");
    assert_eq!(sums(&hers.leaderboard), [t(&ana.to_string(), 1, "1000.00")]);
    let own_quota = sales_dashboard(
        &mut rep,
        GetSalesDashboardRequest {
            owner_id: ana.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!(
        (
            own_quota.quota.as_str(),
            own_quota.attainment_percent.as_str()
        ),
        ("2000.00", "50")
    );
    // The south team's manager, by filter: Ben's two deals.
    let south_only = sales_dashboard(
        &mut admin,
        GetSalesDashboardRequest {
            team_id: south.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!(
        (
            south_only.won,
            south_only.open,
            south_only.won_amount.as_str()
        ),
        (1, 1, "4000.00")
    );
    // Amounts in another currency: counts stay, amounts are that
    // currency's (none).
    let dollars = sales_dashboard(
        &mut admin,
        GetSalesDashboardRequest {
            currency: "usd".into(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!(
        (
            dollars.currency.as_str(),
            dollars.won,
            dollars.won_amount.as_str()
        ),
        ("USD", 2, "0.00")
    );

    // A change of amount (opportunity.updated) moves the open figures.
    admin
        .opportunities
        .update_opportunity(UpdateOpportunityRequest {
            opportunity: Some(Opportunity {
                id: deals[3].id.clone(),
                amount: eur("3500"),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["amount".into()],
            }),
            expected_version: 0,
        })
        .await
        .expect("updated");
    let before = &all.open_amount;
    let updated = testkit::eventually("the new amount counts", Duration::from_secs(30), || {
        let mut admin = app.admin();
        async move {
            let d = sales_dashboard(&mut admin, GetSalesDashboardRequest::default())
                .await
                .ok()?;
            (&d.open_amount != before).then_some(d)
        }
    })
    .await;
    assert_eq!(
        (
            updated.open_amount.as_str(),
            updated.weighted_amount.as_str()
        ),
        ("4000.00", "600.00")
    );

    // Reconciled with sales: every figure agrees...
    let reconciled = admin
        .reconcile
        .reconcile(ReconcileRequest {})
        .await
        .expect("reconciled")
        .into_inner();
    assert_eq!(reconciled.drifting, 0, "{:?}", reconciled.figures);
    let figure = |r: &ReconcileResponse, name: &str, key: &str| {
        r.figures
            .iter()
            .find(|d| d.figure == name && d.key == key)
            .map(|d| (d.source.clone(), d.reporting.clone(), d.difference.clone()))
    };
    assert_eq!(
        figure(&reconciled, "open_deals", &p.id),
        Some(("2".into(), "2".into(), "0".into()))
    );
    assert_eq!(
        figure(&reconciled, "open_deal_amount", &format!("{} EUR", p.id)),
        Some(("4000".into(), "4000".into(), "0".into()))
    );
    // ...until reporting holds a deal sales never had: drift, named.
    let ghost = Uuid::now_v7();
    let created = OpportunityCreated {
        opportunity: Some(Opportunity {
            id: ghost.to_string(),
            pipeline_id: p.id.clone(),
            amount: eur("999"),
            status: OpportunityStatus::Open as i32,
            ..Default::default()
        }),
    };
    app.services.publish(app.tenant, ghost, &created).await;
    let drifted = testkit::eventually("the ghost deal drifts", Duration::from_secs(30), || {
        let mut admin = app.admin();
        async move {
            let r = admin
                .reconcile
                .reconcile(ReconcileRequest {})
                .await
                .ok()?
                .into_inner();
            (r.drifting > 0).then_some(r)
        }
    })
    .await;
    assert_eq!(
        figure(&drifted, "open_deals", &p.id),
        Some(("2".into(), "3".into(), "1".into())),
        "{:?}",
        drifted.figures
    );
    let refused = rep
        .reconcile
        .reconcile(ReconcileRequest {})
        .await
        .expect_err("a rep");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Another tenant's admin, even naming this tenant's pipeline and
    // owner, counts nothing.
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let theirs = stranger
        .reconcile
        .reconcile(ReconcileRequest {})
        .await
        .expect("reconciled")
        .into_inner();
    assert!(theirs.figures.is_empty(), "nothing of this tenant");
    let nothing = sales_dashboard(
        &mut stranger,
        GetSalesDashboardRequest {
            pipeline_id: p.id.clone(),
            owner_id: ana.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    assert_eq!((nothing.won, nothing.open, nothing.funnel.len()), (0, 0, 0));
    assert!(nothing.as_of.is_none());

    // Bad input is named by field.
    let bad = sales_dashboard(
        &mut admin,
        GetSalesDashboardRequest {
            owner_id: "ana".into(),
            pipeline_id: "new business".into(),
            currency: "euro".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad input");
    assert_eq!(
        violated_fields(&bad),
        ["owner_id", "pipeline_id", "currency"]
    );
}

/// The 30 days up to tomorrow: the activities below happen an hour from
/// now.
fn through_tomorrow() -> GetActivityDashboardRequest {
    GetActivityDashboardRequest {
        to: Some(prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() + 86_400,
            nanos: 0,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn lead_sources_response_times_and_activities_per_rep() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let team = Uuid::now_v7();
    let (ana, ben) = (Uuid::now_v7(), Uuid::now_v7());
    let lead = |source: LeadSource, last: &str| {
        let mut leads = admin.leads.clone();
        let last = last.to_owned();
        async move {
            leads
                .create_lead(CreateLeadRequest {
                    lead: Some(Lead {
                        last_name: last.clone(),
                        company: format!("{last} GmbH"),
                        source: source as i32,
                        owner_id: ana.to_string(),
                        team_id: team.to_string(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                })
                .await
                .expect("lead")
                .into_inner()
                .lead
                .expect("lead")
        }
    };
    let called = lead(LeadSource::WebForm, "Kowalski").await;
    lead(LeadSource::Import, "Nakamura").await;
    lead(LeadSource::WebForm, "Okafor").await;

    // Ana calls the first lead an hour after it came in, and e-mails; Ben
    // has a meeting and a task he completes.
    let mut rep = app.user(ana, &[Role::SalesRep], Visibility::Own, &[team]);
    let mut other = app.user(ben, &[Role::SalesRep], Visibility::Own, &[team]);
    let account = testkit::grpc::create_account(&mut rep.accounts, "Kowalski GmbH", "").await;
    let created = called
        .audit
        .as_ref()
        .and_then(|a| a.created_at)
        .expect("created");
    let log = |kind: customers::ActivityKind, related: Vec<customers::RelatedRecord>| {
        customers::LogActivityRequest {
            activity: Some(customers::Activity {
                kind: kind as i32,
                subject: "Follow-up".into(),
                account_id: account.id.clone(),
                related,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: created.seconds + 3600,
                    nanos: created.nanos,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        }
    };
    let about_lead = vec![customers::RelatedRecord {
        kind: "lead".into(),
        id: called.id.clone(),
    }];
    rep.activities
        .log_activity(log(customers::ActivityKind::Call, about_lead))
        .await
        .expect("call");
    rep.activities
        .log_activity(log(customers::ActivityKind::Email, Vec::new()))
        .await
        .expect("e-mail");
    let bens_account = testkit::grpc::create_account(&mut other.accounts, "Okafor", "").await;
    for kind in [
        customers::ActivityKind::Meeting,
        customers::ActivityKind::Task,
    ] {
        let mut request = log(kind, Vec::new());
        if let Some(a) = request.activity.as_mut() {
            a.account_id = bens_account.id.clone();
        }
        let logged = other
            .activities
            .log_activity(request)
            .await
            .expect("logged")
            .into_inner()
            .activity
            .expect("activity");
        if kind == customers::ActivityKind::Task {
            other
                .activities
                .complete_task(customers::CompleteTaskRequest { id: logged.id })
                .await
                .expect("completed");
        }
    }

    let figures = testkit::eventually(
        "the lead's answer is counted",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = sales_dashboard(&mut admin, GetSalesDashboardRequest::default())
                    .await
                    .ok()?;
                let leads: i64 = d.lead_sources.iter().map(|s| s.leads).sum();
                (d.median_lead_response_seconds > 0 && leads == 3).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(figures.median_lead_response_seconds, 3600);
    let sources: Vec<(String, i64, i64)> = figures
        .lead_sources
        .iter()
        .map(|s| (s.source.clone(), s.leads, s.converted))
        .collect();
    assert_eq!(
        sources,
        [("web_form".into(), 2, 0), ("import".into(), 1, 0)]
    );
    assert_eq!(figures.lead_sources[0].conversion_percent, "0");

    let activities =
        testkit::eventually("every activity is counted", Duration::from_secs(30), || {
            let mut admin = app.admin();
            async move {
                let d = admin
                    .dashboards
                    .get_activity_dashboard(through_tomorrow())
                    .await
                    .ok()?
                    .into_inner()
                    .dashboard?;
                let total = d.total.clone()?;
                (total.calls + total.emails + total.meetings + total.tasks_completed == 4)
                    .then_some(d)
            }
        })
        .await;
    let row = |r: &RepActivity| {
        (
            r.owner_id.clone(),
            r.calls,
            r.emails,
            r.meetings,
            r.tasks_created,
            r.tasks_completed,
        )
    };
    let reps: Vec<_> = activities.reps.iter().map(row).collect();
    assert!(reps.contains(&(ana.to_string(), 1, 1, 0, 0, 0)), "{reps:?}");
    assert!(reps.contains(&(ben.to_string(), 0, 0, 1, 1, 1)), "{reps:?}");
    // Ana sees her own activities and leads only.
    let hers = rep
        .dashboards
        .get_activity_dashboard(through_tomorrow())
        .await
        .expect("dashboard")
        .into_inner()
        .dashboard
        .expect("dashboard");
    assert_eq!(
        hers.reps.iter().map(row).collect::<Vec<_>>(),
        [(ana.to_string(), 1, 1, 0, 0, 0)]
    );
    // Another tenant counts none of it; a malformed owner is refused.
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let nothing = stranger
        .dashboards
        .get_activity_dashboard(GetActivityDashboardRequest {
            owner_id: ana.to_string(),
            ..through_tomorrow()
        })
        .await
        .expect("dashboard")
        .into_inner()
        .dashboard
        .expect("dashboard");
    assert!(nothing.reps.is_empty());
    let bad = admin
        .dashboards
        .get_activity_dashboard(GetActivityDashboardRequest {
            team_id: "north".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad team");
    assert_eq!(violated_fields(&bad), ["team_id"]);
}

#[tokio::test]
async fn a_backfill_restores_history_the_stream_no_longer_has() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let p = crate::harness::won_lost_pipeline(&mut admin).await;
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    let mut deals = Vec::new();
    for amount in ["100", "200", "300"] {
        let o = admin
            .opportunities
            .create_opportunity(CreateOpportunityRequest {
                opportunity: Some(Opportunity {
                    name: format!("Deal {amount}"),
                    pipeline_id: p.id.clone(),
                    account_id: account.id.clone(),
                    amount: eur(amount),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("deal")
            .into_inner()
            .opportunity
            .expect("deal");
        deals.push(o);
    }
    let open_amount = |expected: &'static str| {
        let app = &app;
        async move {
            testkit::eventually(
                &format!("open amount {expected}"),
                Duration::from_secs(30),
                || {
                    let mut admin = app.admin();
                    async move {
                        let d = sales_dashboard(&mut admin, GetSalesDashboardRequest::default())
                            .await
                            .ok()?;
                        (d.open_amount == expected).then_some(())
                    }
                },
            )
            .await
        }
    };
    open_amount("600.00").await;
    // History older than the streams keep: reporting has lost the deals.
    let owner = app.services.db("reporting").admin_pool().await;
    sqlx::query("DELETE FROM deals")
        .execute(&owner)
        .await
        .expect("deleted");
    open_amount("0.00").await;
    let drifting = admin
        .reconcile
        .reconcile(ReconcileRequest {})
        .await
        .expect("reconciled")
        .into_inner()
        .drifting;
    assert!(drifting > 0);
    // The backfill reads them again from sales.
    let read = admin
        .reconcile
        .backfill(BackfillRequest {
            dataset: "deals".into(),
        })
        .await
        .expect("backfilled")
        .into_inner()
        .read;
    assert_eq!(read, 3);
    open_amount("600.00").await;
    let reconciled = admin
        .reconcile
        .reconcile(ReconcileRequest {})
        .await
        .expect("reconciled")
        .into_inner();
    assert_eq!(reconciled.drifting, 0, "{:?}", reconciled.figures);
    // An older version of a deal (a late event, or a snapshot read before
    // a change) never overwrites a newer one: the deal changes in sales
    // (version 2), then a version 1 of it arrives.
    admin
        .opportunities
        .update_opportunity(UpdateOpportunityRequest {
            opportunity: Some(Opportunity {
                id: deals[0].id.clone(),
                amount: eur("150"),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["amount".into()],
            }),
            expected_version: 0,
        })
        .await
        .expect("updated");
    open_amount("650.00").await;
    let mut stale = deals[0].clone();
    stale.amount = eur("99999");
    let id: Uuid = stale.id.parse().expect("id");
    let late = app
        .services
        .publish(
            app.tenant,
            id,
            &OpportunityUpdated {
                opportunity: Some(stale),
            },
        )
        .await
        .occurred_at
        .expect("a time");
    let settled = testkit::eventually("the late event applied", Duration::from_secs(30), || {
        let mut admin = app.admin();
        async move {
            let d = sales_dashboard(&mut admin, GetSalesDashboardRequest::default())
                .await
                .ok()?;
            let as_of = d.as_of?;
            let micros = |t: &prost_types::Timestamp| (t.seconds, t.nanos / 1000);
            (micros(&as_of) >= micros(&late)).then_some(d)
        }
    })
    .await;
    assert_eq!(
        settled.open_amount, "650.00",
        "the late version 1 changed nothing"
    );
    // Tickets come back the same way.
    admin
        .tickets
        .create_ticket(crm_proto::crm::servicedesk::v1::CreateTicketRequest {
            ticket: Some(crm_proto::crm::servicedesk::v1::Ticket {
                subject: "Printer on fire".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("ticket");
    let open_tickets = |expected: i64| {
        let app = &app;
        async move {
            testkit::eventually(
                &format!("{expected} open tickets"),
                Duration::from_secs(30),
                || {
                    let mut admin = app.admin();
                    async move {
                        let d = admin
                            .dashboards
                            .get_service_dashboard(GetServiceDashboardRequest::default())
                            .await
                            .ok()?
                            .into_inner()
                            .dashboard?;
                        (d.backlog == expected).then_some(())
                    }
                },
            )
            .await
        }
    };
    open_tickets(1).await;
    sqlx::query("DELETE FROM tickets")
        .execute(&owner)
        .await
        .expect("deleted");
    open_tickets(0).await;
    let read = admin
        .reconcile
        .backfill(BackfillRequest {
            dataset: "tickets".into(),
        })
        .await
        .expect("backfilled")
        .into_inner()
        .read;
    assert_eq!(read, 1);
    open_tickets(1).await;
    let refused = admin
        .reconcile
        .backfill(BackfillRequest {
            dataset: "contacts".into(),
        })
        .await
        .expect_err("not a backfillable dataset");
    assert_eq!(violated_fields(&refused), ["dataset"]);
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let refused = rep
        .reconcile
        .backfill(BackfillRequest {
            dataset: "deals".into(),
        })
        .await
        .expect_err("a rep");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
}

/// An order placed in sales the way a rep places one: a product priced in
/// the default book, a quote on `deal` submitted, sent and accepted, then
/// ordered.
async fn order_in_sales(admin: &mut Client, deal: &str, quantity: &str) -> Order {
    let sku = format!("SKU-{}", Uuid::now_v7().simple());
    let product = admin
        .catalog
        .create_product(CreateProductRequest {
            request_id: String::new(),
            product: Some(Product {
                sku,
                name: "Seat".into(),
                tax_percent: "0".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product");
    let books = admin
        .catalog
        .list_price_books(ListPriceBooksRequest::default())
        .await
        .expect("books")
        .into_inner()
        .price_books;
    let book = match books.into_iter().find(|b| b.is_default) {
        Some(book) => book,
        None => admin
            .catalog
            .create_price_book(CreatePriceBookRequest {
                request_id: String::new(),
                price_book: Some(PriceBook {
                    name: "Euro list".into(),
                    currency: "EUR".into(),
                    ..Default::default()
                }),
            })
            .await
            .expect("book")
            .into_inner()
            .price_book
            .expect("book"),
    };
    admin
        .catalog
        .set_prices(SetPricesRequest {
            price_book_id: book.id.clone(),
            entries: vec![PriceBookEntry {
                price_book_id: book.id.clone(),
                product_id: product.id.clone(),
                list_price: eur("10"),
            }],
        })
        .await
        .expect("prices");
    let quote = admin
        .quotes
        .create_quote(CreateQuoteRequest {
            request_id: String::new(),
            quote: Some(Quote {
                opportunity_id: deal.into(),
                lines: vec![QuoteLine {
                    product_id: product.id.clone(),
                    quantity: quantity.into(),
                    ..Default::default()
                }],
                valid_until: "2099-12-31".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("quote")
        .into_inner()
        .quote
        .expect("quote");
    // No discount: approved on submission.
    admin
        .quotes
        .submit_quote(SubmitQuoteRequest {
            id: quote.id.clone(),
        })
        .await
        .expect("submitted");
    admin
        .quotes
        .send_quote(SendQuoteRequest {
            id: quote.id.clone(),
        })
        .await
        .expect("sent");
    admin
        .quotes
        .record_customer_decision(RecordCustomerDecisionRequest {
            id: quote.id.clone(),
            accepted: true,
        })
        .await
        .expect("accepted");
    admin
        .orders
        .create_order(CreateOrderRequest {
            request_id: String::new(),
            quote_id: quote.id,
            start_date: "2027-01-01".into(),
            end_date: String::new(),
        })
        .await
        .expect("order")
        .into_inner()
        .order
        .expect("order")
}

#[tokio::test]
async fn leads_and_orders_are_backfilled_from_sales() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let p = crate::harness::won_lost_pipeline(&mut admin).await;
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    let deal = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Seats".into(),
                pipeline_id: p.id.clone(),
                account_id: account.id.clone(),
                amount: eur("100"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("deal")
        .into_inner()
        .opportunity
        .expect("deal");
    for (source, last) in [(LeadSource::WebForm, "Ada"), (LeadSource::Manual, "Bo")] {
        admin
            .leads
            .create_lead(CreateLeadRequest {
                lead: Some(Lead {
                    last_name: last.into(),
                    company: format!("{last} GmbH"),
                    source: source as i32,
                    region: "North".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("lead");
    }
    let order = order_in_sales(&mut admin, &deal.id, "3").await;
    let owner = app.services.db("reporting").admin_pool().await;
    let counts = || {
        let owner = owner.clone();
        let tenant = app.tenant;
        async move {
            sqlx::query_as::<_, (i64, i64, Option<Uuid>)>(
                "SELECT (SELECT count(*) FROM leads WHERE tenant_id = $1 AND region = 'North'), \
                 (SELECT count(*) FROM orders WHERE tenant_id = $1), \
                 (SELECT account_id FROM orders WHERE tenant_id = $1 LIMIT 1)",
            )
            .bind(tenant)
            .fetch_one(&owner)
            .await
            .expect("counts")
        }
    };
    let account_id: Uuid = account.id.parse().expect("id");
    testkit::eventually(
        "leads and the order projected",
        Duration::from_secs(30),
        || async { (counts().await == (2, 1, Some(account_id))).then_some(()) },
    )
    .await;
    // History older than the streams keep: reporting has lost them.
    for table in ["leads", "orders"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&owner)
            .await
            .expect("deleted");
    }
    assert_eq!(counts().await, (0, 0, None));
    let mut backfill = async |dataset: &str| {
        admin
            .reconcile
            .backfill(BackfillRequest {
                dataset: dataset.into(),
            })
            .await
            .map(|r| r.into_inner().read)
    };
    assert_eq!(backfill("leads").await.expect("leads"), 2);
    assert_eq!(backfill("orders").await.expect("orders"), 1);
    assert_eq!(counts().await, (2, 1, Some(account_id)));
    // Again: nothing doubles.
    assert_eq!(backfill("orders").await.expect("orders"), 1);
    assert_eq!(counts().await, (2, 1, Some(account_id)));
    let unknown = backfill("payments").await.expect_err("unknown dataset");
    assert_eq!(violated_fields(&unknown), ["dataset"]);
    // Another tenant's admin reads its own tenant's records from sales
    // (none) and writes nothing here.
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    for dataset in ["leads", "orders", "deals"] {
        let read = stranger
            .reconcile
            .backfill(BackfillRequest {
                dataset: dataset.into(),
            })
            .await
            .expect("another tenant's backfill")
            .into_inner()
            .read;
        assert_eq!(
            read, 0,
            "another tenant reads none of this tenant's {dataset}"
        );
    }
    assert_eq!(counts().await, (2, 1, Some(account_id)));
    // A rep backfills nothing.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let denied = rep
        .reconcile
        .backfill(BackfillRequest {
            dataset: "leads".into(),
        })
        .await
        .expect_err("a rep");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let _ = order;
}
