//! The report builder: definitions checked field by field (injection
//! attempts in names never reach SQL), results over what each caller may
//! see, saved reports and dashboards shared by owner, team or tenant, CSV
//! and SVG.

use std::time::Duration;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1::{filter, Condition, Filter, Operator};
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1 as sales;
use kit::auth::{Role, Visibility};
use prost_types::value::Kind;
use uuid::Uuid;

use crm_proto::crm::reporting::v1::report_service_client::ReportServiceClient;

use crate::harness::{violated_fields, Client, TestApp};

fn won_by_owner() -> ReportDefinition {
    ReportDefinition {
        dataset: "deals".into(),
        group_by: vec![GroupBy {
            field: "owner_id".into(),
            bucket: 0,
        }],
        measures: vec![
            Measure {
                aggregate: Aggregate::Count as i32,
                field: String::new(),
            },
            Measure {
                aggregate: Aggregate::Sum as i32,
                field: "amount".into(),
            },
        ],
        filter: Some(Filter {
            node: Some(filter::Node::Condition(Condition {
                field: "status".into(),
                op: Operator::Eq as i32,
                value: Some(prost_types::Value {
                    kind: Some(Kind::StringValue("won".into())),
                }),
            })),
        }),
        sort: vec![Sort {
            key: "sum_amount".into(),
            descending: true,
        }],
        ..Default::default()
    }
}

async fn compute(
    client: &mut Client,
    definition: ReportDefinition,
) -> Result<ReportResult, tonic::Status> {
    client
        .reports
        .compute_report(ComputeReportRequest {
            report_id: String::new(),
            definition: Some(definition),
        })
        .await
        .map(|r| r.into_inner().result.expect("result"))
}

fn rows(result: &ReportResult) -> Vec<Vec<String>> {
    result.rows.iter().map(|r| r.values.clone()).collect()
}

/// Won deals of `amount` euros for `owner`, straight into a won stage.
async fn won(
    admin: &mut Client,
    pipeline: &sales::Pipeline,
    account: &str,
    owner: Uuid,
    team: Uuid,
    amount: &str,
) {
    admin
        .opportunities
        .create_opportunity(sales::CreateOpportunityRequest {
            opportunity: Some(sales::Opportunity {
                name: format!("Deal of {amount}"),
                pipeline_id: pipeline.id.clone(),
                stage_id: pipeline.stages[1].id.clone(),
                account_id: account.into(),
                amount: Some(Money {
                    amount: amount.into(),
                    currency: "EUR".into(),
                }),
                owner_id: owner.to_string(),
                team_id: team.to_string(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("won deal");
}

async fn report(
    client: &mut Client,
    name: &str,
    sharing: Sharing,
) -> Result<Report, tonic::Status> {
    client
        .reports
        .create_report(CreateReportRequest {
            report: Some(Report {
                name: name.into(),
                definition: Some(won_by_owner()),
                sharing: sharing as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().report.expect("report"))
}

#[tokio::test]
async fn reports_count_what_each_caller_may_see_and_are_shared_as_saved() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (team, other_team) = (Uuid::now_v7(), Uuid::now_v7());
    let (ana, ben) = (Uuid::now_v7(), Uuid::now_v7());
    let pipeline = crate::harness::won_lost_pipeline(&mut admin).await;
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    won(&mut admin, &pipeline, &account.id, ana, team, "1000").await;
    won(&mut admin, &pipeline, &account.id, ana, team, "500.50").await;
    won(&mut admin, &pipeline, &account.id, ben, other_team, "4000").await;

    let all = testkit::eventually("every won deal is in", Duration::from_secs(30), || {
        let mut admin = app.admin();
        async move {
            let r = compute(&mut admin, won_by_owner()).await.ok()?;
            (r.rows.len() == 2).then_some(r)
        }
    })
    .await;
    let names: Vec<(&str, &str, &str)> = all
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.role.as_str(), c.r#type.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("owner_id", "dimension", "id"),
            ("count", "measure", "number"),
            ("sum_amount", "measure", "amount")
        ]
    );
    assert_eq!(
        rows(&all),
        [
            vec![ben.to_string(), "1".into(), "4000.00".into()],
            vec![ana.to_string(), "2".into(), "1500.50".into()],
        ]
    );
    assert_eq!(all.currency, "EUR");
    assert!(all.as_of.is_some());

    // Ana counts her own deals only, whatever the definition asks.
    let mut rep = app.user(ana, &[Role::SalesRep], Visibility::Own, &[team]);
    let hers = compute(&mut rep, won_by_owner()).await.expect("computed");
    assert_eq!(
        rows(&hers),
        [vec![ana.to_string(), "2".into(), "1500.50".into()]]
    );

    // Bad definitions are refused by field, before any SQL: names that try
    // to smuggle SQL are just unknown fields.
    let mut bad = won_by_owner();
    bad.group_by[0].field = "owner_id); DROP TABLE deals; --".into();
    bad.measures[1].field = "amount\" FROM deals; --".into();
    bad.sort[0].key = "1; SELECT pg_sleep(10)".into();
    let refused = compute(&mut admin, bad).await.expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        violated_fields(&refused),
        [
            "definition.group_by[0].field",
            "definition.measures[1].field",
            "definition.sort[0].key"
        ]
    );
    let mut wrong_type = won_by_owner();
    wrong_type.measures[1].field = "lost_reason".into();
    wrong_type.sort.clear();
    let refused = compute(&mut admin, wrong_type).await.expect_err("refused");
    assert_eq!(violated_fields(&refused), ["definition.measures[1].field"]);
    // A quoted value is a value: it matches nothing and breaks nothing.
    let mut quoted = won_by_owner();
    quoted.filter = Some(Filter {
        node: Some(filter::Node::Condition(Condition {
            field: "lost_reason".into(),
            op: Operator::Contains as i32,
            value: Some(prost_types::Value {
                kind: Some(Kind::StringValue("x' OR '1'='1".into())),
            }),
        })),
    });
    assert!(compute(&mut admin, quoted)
        .await
        .expect("computed")
        .rows
        .is_empty());

    // Saved reports: Ana's private one is hers; shared with her team, her
    // teammate sees it and counts their own deals; a viewer saves none;
    // another tenant finds nothing.
    let private = report(&mut rep, "My wins", Sharing::Private)
        .await
        .expect("saved");
    let mut teammate = app.client(&[Role::SalesRep], Visibility::Own, &[team]);
    let hidden = teammate
        .reports
        .get_report(GetReportRequest {
            id: private.id.clone(),
        })
        .await
        .expect_err("private");
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    let shared = report(&mut rep, "Team wins", Sharing::Team)
        .await
        .expect("saved");
    assert_eq!(shared.team_id, team.to_string(), "the owner's team");
    let theirs = teammate
        .reports
        .compute_report(ComputeReportRequest {
            report_id: shared.id.clone(),
            definition: None,
        })
        .await
        .expect("computed")
        .into_inner()
        .result
        .expect("result");
    assert!(theirs.rows.is_empty(), "the teammate owns no deals");
    let listed = teammate
        .reports
        .list_reports(ListReportsRequest {})
        .await
        .expect("listed")
        .into_inner()
        .reports;
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["Team wins"]
    );
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let refused = report(&mut viewer, "Peek", Sharing::Private)
        .await
        .expect_err("viewer");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let foreign = stranger
        .reports
        .get_report(GetReportRequest {
            id: shared.id.clone(),
        })
        .await
        .expect_err("another tenant's");
    assert_eq!(foreign.code(), tonic::Code::NotFound);
    // Only its owner (or a manager) changes it; a stale version is refused.
    let rename = |version: i64| UpdateReportRequest {
        report: Some(Report {
            id: shared.id.clone(),
            name: "Our wins".into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
        expected_version: version,
    };
    let refused = teammate
        .reports
        .update_report(rename(0))
        .await
        .expect_err("not theirs");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let renamed = rep
        .reports
        .update_report(rename(1))
        .await
        .expect("renamed")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(renamed.name, "Our wins");
    let stale = rep
        .reports
        .update_report(rename(1))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), tonic::Code::Aborted);

    // Charts and CSV of the admin's tenant-wide report.
    let wide = report(&mut admin, "Wins by owner", Sharing::Tenant)
        .await
        .expect("saved");
    let chart = admin
        .reports
        .get_report_chart(GetReportChartRequest {
            id: wide.id.clone(),
        })
        .await
        .expect("chart")
        .into_inner();
    assert!(chart.svg.starts_with("<svg"));
    assert!(chart.svg.contains("Wins by owner"), "titled");
    assert!(
        chart.svg.contains("count (") || chart.svg.contains("count"),
        "the axis"
    );
    assert!(chart.svg.matches("<rect").count() >= 2, "a bar per owner");
    let mut stream = admin
        .reports
        .export_report(ExportReportRequest {
            id: wide.id.clone(),
        })
        .await
        .expect("export")
        .into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        csv.extend(chunk.chunk);
    }
    let csv = String::from_utf8(csv).expect("utf-8");
    assert_eq!(
        csv,
        format!("owner_id,count,sum_amount\n{ben},1,4000.00\n{ana},2,1500.50\n")
    );

    // Dashboards hold reports their creator sees, in order.
    let board = rep
        .reports
        .create_report_dashboard(CreateReportDashboardRequest {
            dashboard: Some(ReportDashboard {
                name: "Ana's board".into(),
                report_ids: vec![private.id.clone(), wide.id.clone()],
                ..Default::default()
            }),
            request_id: "board-1".into(),
        })
        .await
        .expect("board")
        .into_inner()
        .dashboard
        .expect("board");
    assert_eq!(board.report_ids, [private.id.clone(), wide.id.clone()]);
    let refused = teammate
        .reports
        .create_report_dashboard(CreateReportDashboardRequest {
            dashboard: Some(ReportDashboard {
                name: "Borrowed".into(),
                report_ids: vec![wide.id.clone(), private.id.clone()],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("another's private report");
    assert_eq!(violated_fields(&refused), ["dashboard.report_ids[1]"]);

    // Another tenant finds none of it by id; an API key without the
    // reporting scopes reads and saves nothing.
    let id = || wide.id.clone();
    let not_found =
        |status: tonic::Status| assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    not_found(
        stranger
            .reports
            .get_report_chart(GetReportChartRequest { id: id() })
            .await
            .expect_err("another tenant's chart"),
    );
    not_found(
        stranger
            .reports
            .export_report(ExportReportRequest { id: id() })
            .await
            .expect_err("another tenant's export"),
    );
    not_found(
        stranger
            .reports
            .delete_report(DeleteReportRequest { id: id() })
            .await
            .expect_err("another tenant's report"),
    );
    not_found(
        stranger
            .reports
            .get_report_dashboard(GetReportDashboardRequest {
                id: board.id.clone(),
            })
            .await
            .expect_err("another tenant's dashboard"),
    );
    not_found(
        stranger
            .reports
            .delete_report_dashboard(DeleteReportDashboardRequest {
                id: board.id.clone(),
            })
            .await
            .expect_err("another tenant's dashboard"),
    );
    let mut claims = app.services.issuer.claims(
        app.tenant,
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
    );
    claims.scopes = vec!["sales:read".into()];
    let key = kit::auth::BearerToken::new(&app.services.issuer.sign(&claims)).expect("a token");
    let mut keyed = ReportServiceClient::with_interceptor(app.services.channel("reporting"), key);
    let denied = |status: tonic::Status| {
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}")
    };
    denied(
        keyed
            .compute_report(ComputeReportRequest {
                report_id: id(),
                definition: None,
            })
            .await
            .expect_err("no reporting:read"),
    );
    denied(
        keyed
            .export_report(ExportReportRequest { id: id() })
            .await
            .expect_err("no reporting:read"),
    );
    denied(
        keyed
            .create_report(CreateReportRequest {
                report: Some(Report {
                    name: "Keyed".into(),
                    definition: Some(won_by_owner()),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect_err("no reporting:write"),
    );
}

#[tokio::test]
async fn a_scheduled_report_is_mailed_once_across_pods() {
    let clock = kit::clock::Clock::manual(
        chrono::DateTime::parse_from_rfc3339("2026-12-01T06:30:00Z")
            .expect("a time")
            .with_timezone(&chrono::Utc),
    );
    let mut app = TestApp::spawn_at(clock.clone()).await;
    app.second_pod().await;
    let mut admin = app.admin();
    for (name, industry) in [
        ("Acme", "Retail"),
        ("Initech", "Software"),
        ("Globex", "Retail"),
    ] {
        admin
            .accounts
            .create_account(crm_proto::crm::customers::v1::CreateAccountRequest {
                account: Some(crm_proto::crm::customers::v1::Account {
                    name: name.into(),
                    industry: industry.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("account");
    }
    let by_industry = ReportDefinition {
        dataset: "accounts".into(),
        group_by: vec![GroupBy {
            field: "industry".into(),
            bucket: 0,
        }],
        measures: vec![Measure {
            aggregate: Aggregate::Count as i32,
            field: String::new(),
        }],
        ..Default::default()
    };
    testkit::eventually("the accounts are in", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let definition = by_industry.clone();
        async move { (compute(&mut admin, definition).await.ok()?.rows.len() == 2).then_some(()) }
    })
    .await;
    let schedule = |recipients: Vec<&str>| ReportSchedule {
        frequency: Frequency::Daily as i32,
        hour: 7,
        day: 0,
        recipients: recipients.into_iter().map(str::to_owned).collect(),
        next_run_at: None,
    };
    let save = |schedule: ReportSchedule| CreateReportRequest {
        report: Some(Report {
            name: "Accounts by industry".into(),
            definition: Some(by_industry.clone()),
            sharing: Sharing::Tenant as i32,
            schedule: Some(schedule),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let refused = admin
        .reports
        .create_report(save(schedule(vec!["not an address"])))
        .await
        .expect_err("a bad recipient");
    assert_eq!(violated_fields(&refused), ["report.schedule.recipients[0]"]);
    let report = admin
        .reports
        .create_report(save(schedule(vec!["boss@example.com", "Boss@Example.com"])))
        .await
        .expect("scheduled")
        .into_inner()
        .report
        .expect("report");
    let saved = report.schedule.clone().expect("a schedule");
    assert_eq!(saved.recipients, ["boss@example.com"], "one address, once");
    assert_eq!(
        saved.next_run_at.map(|t| t.seconds),
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-12-01T07:00:00Z")
                .expect("a time")
                .timestamp()
        )
    );
    assert_eq!(app.smtp.count(), 0, "not before its time");

    // Seven o'clock: one of the two pods mails it, once.
    clock.advance(chrono::Duration::minutes(31));
    let next = testkit::eventually(
        "the run moved on to tomorrow",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            let id = report.id.clone();
            async move {
                let report = admin
                    .reports
                    .get_report(GetReportRequest { id })
                    .await
                    .ok()?
                    .into_inner()
                    .report?;
                let next = report.schedule?.next_run_at?.seconds;
                (next > saved.next_run_at.as_ref()?.seconds).then_some(next)
            }
        },
    )
    .await;
    assert_eq!(
        next,
        chrono::DateTime::parse_from_rfc3339("2026-12-02T07:00:00Z")
            .expect("a time")
            .timestamp()
    );
    let mails = app.smtp.wait_for(1).await;
    assert_eq!(mails.len(), 1, "one mail for one run, across two pods");
    let mail = &mails[0];
    assert_eq!(mail.to, ["boss@example.com"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Report: Accounts by industry")
    );
    let body = mail.decoded();
    assert!(
        body.contains("report.csv") && body.contains("chart.svg"),
        "both attached"
    );
    let event = app
        .services
        .event(
            "reporting",
            "crm.reporting.report.scheduled_sent.v1",
            &report.id,
        )
        .await;
    let sent: ReportScheduledSent = kit::events::decode_data(&event).expect("payload");
    assert_eq!((sent.recipients, sent.rows), (1, 2));
}

fn count_and_sum(dataset: &str) -> ReportDefinition {
    let mut measures = vec![Measure {
        aggregate: Aggregate::Count as i32,
        field: String::new(),
    }];
    if dataset == "deals" {
        measures.push(Measure {
            aggregate: Aggregate::Sum as i32,
            field: "amount".into(),
        });
    }
    ReportDefinition {
        dataset: dataset.into(),
        measures,
        ..Default::default()
    }
}

#[tokio::test]
async fn redelivered_events_never_double_and_erased_people_leave() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    // A won deal as sales publishes it, then its win published three times
    // (a producer retrying after a lost acknowledgement: new event ids,
    // past the inbox's once-per-event).
    let deal = Uuid::now_v7();
    let money = || {
        Some(Money {
            amount: "1000".into(),
            currency: "EUR".into(),
        })
    };
    let opportunity = sales::Opportunity {
        id: deal.to_string(),
        name: "Acme seats".into(),
        amount: money(),
        status: sales::OpportunityStatus::Won as i32,
        owner_id: Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let created = sales::OpportunityCreated {
        opportunity: Some(opportunity),
    };
    app.services.publish(app.tenant, deal, &created).await;
    let won = sales::OpportunityWon {
        opportunity_id: deal.to_string(),
        amount: money(),
        line_items: vec![sales::LineItem {
            description: "Seats".into(),
            total: money(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut last = None;
    for _ in 0..3 {
        last = Some(app.services.publish(app.tenant, deal, &won).await);
    }
    let last = last.and_then(|e| e.occurred_at).expect("a time");
    // A contact that is then erased in customers.
    let contact = admin
        .contacts
        .create_contact(crm_proto::crm::customers::v1::CreateContactRequest {
            contact: Some(crm_proto::crm::customers::v1::Contact {
                first_name: "Grace".into(),
                last_name: "Hopper".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("contact")
        .into_inner()
        .contact
        .expect("contact");
    let counted = |dataset: &'static str, expected: Vec<Vec<String>>| {
        let app = &app;
        async move {
            testkit::eventually(
                &format!("{dataset} as expected"),
                Duration::from_secs(30),
                || {
                    let mut admin = app.admin();
                    let expected = expected.clone();
                    async move {
                        let result = compute(&mut admin, count_and_sum(dataset)).await.ok()?;
                        (rows(&result) == expected).then_some(())
                    }
                },
            )
            .await
        }
    };
    counted("contacts", vec![vec!["1".into()]]).await;
    let lines = ReportDefinition {
        dataset: "deals".into(),
        measures: vec![Measure {
            aggregate: Aggregate::Sum as i32,
            field: "amount".into(),
        }],
        filter: Some(Filter {
            node: Some(filter::Node::Condition(Condition {
                field: "status".into(),
                op: Operator::Eq as i32,
                value: Some(prost_types::Value {
                    kind: Some(Kind::StringValue("won".into())),
                }),
            })),
        }),
        ..Default::default()
    };
    // Once the last win is applied (the answer is as of it), the sum is
    // the deal's amount once, and its line once.
    let won_sum = testkit::eventually("every win applied", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let lines = lines.clone();
        async move {
            let result = compute(&mut admin, lines).await.ok()?;
            // PostgreSQL keeps microseconds.
            let as_of = result.as_of?;
            let micros = |t: &prost_types::Timestamp| (t.seconds, t.nanos / 1000);
            (micros(&as_of) >= micros(&last)).then_some(result)
        }
    })
    .await;
    assert_eq!(rows(&won_sum), [vec!["1000.00".to_string()]]);
    counted("deals", vec![vec!["1".into(), "1000.00".into()]]).await;
    let mut data =
        crm_proto::crm::customers::v1::data_service_client::DataServiceClient::with_interceptor(
            app.services.channel("customers"),
            app.services.bearer(
                app.tenant,
                Uuid::now_v7(),
                &[Role::Admin],
                Visibility::Tenant,
                &[],
            ),
        );
    data.erase_contact(crm_proto::crm::customers::v1::EraseContactRequest {
        contact_id: contact.id.clone(),
    })
    .await
    .expect("erased");
    counted("contacts", vec![vec!["0".into()]]).await;
}
