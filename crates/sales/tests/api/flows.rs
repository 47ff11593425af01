use std::collections::HashMap;
use std::time::Duration;

use crm_proto::crm::customers::v1 as customers;
use crm_proto::crm::sales::v1::routing_rule::Target;
use crm_proto::crm::sales::v1::scoring_rule::Condition;
use crm_proto::crm::sales::v1::*;
use kit::auth::{Role, Visibility};
use testkit::eventually;
use uuid::Uuid;

use crate::harness::*;

fn lead(last: &str, country: &str, industry: &str) -> Lead {
    Lead {
        last_name: last.into(),
        company: format!("{last} GmbH"),
        country: country.into(),
        industry: industry.into(),
        ..Default::default()
    }
}

async fn create_account(client: &mut Client, name: &str) -> customers::Account {
    testkit::grpc::create_account(&mut client.accounts, name, "").await
}

async fn create_lead(client: &mut Client, lead: Lead) -> Lead {
    client
        .leads
        .create_lead(CreateLeadRequest {
            lead: Some(lead),
            request_id: String::new(),
        })
        .await
        .expect("create lead")
        .into_inner()
        .lead
        .unwrap()
}

#[tokio::test]
async fn leads_route_by_territory_then_round_robin_skipping_inactive_reps() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (team, banker) = (Uuid::now_v7(), Uuid::now_v7());
    let (ana, ben, cy) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    admin
        .leads
        .set_team_roster(SetTeamRosterRequest {
            roster: Some(TeamRoster {
                team_id: team.to_string(),
                members: vec![
                    RosterMember {
                        user_id: ana.to_string(),
                        active: true,
                    },
                    RosterMember {
                        user_id: ben.to_string(),
                        active: true,
                    },
                    RosterMember {
                        user_id: cy.to_string(),
                        active: false,
                    },
                ],
            }),
        })
        .await
        .unwrap();
    let bad = admin
        .leads
        .set_routing_rules(SetRoutingRulesRequest {
            rules: vec![RoutingRule {
                name: "no target".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["rules[0].target"]);
    admin
        .leads
        .set_routing_rules(SetRoutingRulesRequest {
            rules: vec![
                RoutingRule {
                    name: "Banking anywhere".into(),
                    r#match: Some(TerritoryMatch {
                        industry: "banking".into(),
                        ..Default::default()
                    }),
                    target: Some(Target::UserId(banker.to_string())),
                    ..Default::default()
                },
                RoutingRule {
                    name: "DACH".into(),
                    r#match: Some(TerritoryMatch {
                        country: "de".into(),
                        ..Default::default()
                    }),
                    target: Some(Target::TeamId(team.to_string())),
                    ..Default::default()
                },
            ],
        })
        .await
        .unwrap();

    // Banking wins over DACH because it comes first.
    let banking = create_lead(&mut admin, lead("Geld", "DE", "Banking")).await;
    assert_eq!(banking.owner_id, banker.to_string());
    let event = app
        .event("sales", "crm.sales.lead.assigned.v1", &banking.id)
        .await;
    let assigned: LeadAssigned = prost::Message::decode(event.data.as_slice()).unwrap();
    assert!(!assigned.rule_id.is_empty());

    // Nine DACH leads created at once: shared fairly by the two active reps.
    let mut tasks = Vec::new();
    for i in 0..9 {
        let mut client = app.admin();
        tasks.push(tokio::spawn(async move {
            create_lead(&mut client, lead(&format!("Kunde{i}"), "DE", "Retail")).await
        }));
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let lead = task.await.unwrap();
        assert_eq!(lead.team_id, team.to_string());
        *counts.entry(lead.owner_id).or_default() += 1;
    }
    let (a, b) = (
        counts.get(&ana.to_string()).copied().unwrap_or(0),
        counts.get(&ben.to_string()).copied().unwrap_or(0),
    );
    assert_eq!(a + b, 9, "{counts:?}");
    assert!(a.abs_diff(b) <= 1, "round robin is fair: {counts:?}");
    assert!(
        !counts.contains_key(&cy.to_string()),
        "the inactive rep gets none"
    );

    // No rule matches: the lead waits in the default queue.
    let queued = create_lead(&mut admin, lead("Dupont", "FR", "Retail")).await;
    assert!(queued.owner_id.is_empty());
    let queue = admin
        .leads
        .list_leads(ListLeadsRequest {
            unassigned: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .leads;
    let queued_ids: Vec<&str> = queue.iter().map(|l| l.id.as_str()).collect();
    assert_eq!(queued_ids, [queued.id.as_str()]);
    // Bulk assignment by a manager; a sales rep may not assign.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let refused = rep
        .leads
        .assign_leads(AssignLeadsRequest {
            lead_ids: vec![queued.id.clone()],
            user_id: rep.user.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[]);
    let moved = manager
        .leads
        .assign_leads(AssignLeadsRequest {
            lead_ids: vec![queued.id.clone()],
            user_id: rep.user.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .leads;
    assert_eq!(moved[0].owner_id, rep.user.to_string());
    // Now the rep sees it (own visibility), and only it.
    let mine = rep
        .leads
        .list_leads(ListLeadsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .leads;
    assert_eq!(mine.len(), 1);
}

#[tokio::test]
async fn scores_count_attributes_and_decaying_engagements() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let attribute = |field: &str, value: &str, points| ScoringRule {
        condition: Some(Condition::Attribute(AttributeCondition {
            field: field.into(),
            value: value.into(),
        })),
        points,
        ..Default::default()
    };
    let bad = admin
        .leads
        .set_scoring_settings(SetScoringSettingsRequest {
            settings: Some(ScoringSettings {
                rules: vec![attribute("shoe_size", "42", 5)],
                half_life_days: -1,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        [
            "settings.half_life_days",
            "settings.rules[0].attribute.field"
        ]
    );
    let vp = create_lead(
        &mut admin,
        Lead {
            title: "VP Sales".into(),
            ..lead("Vogel", "DE", "Software")
        },
    )
    .await;
    assert_eq!(vp.score, 0);
    admin
        .leads
        .set_scoring_settings(SetScoringSettingsRequest {
            settings: Some(ScoringSettings {
                rules: vec![
                    attribute("title", "vp", 20),
                    attribute("industry", "software", 5),
                    ScoringRule {
                        condition: Some(Condition::Engagement("email_clicked".into())),
                        points: 10,
                        ..Default::default()
                    },
                ],
                half_life_days: 7,
            }),
        })
        .await
        .unwrap();
    // Existing open leads are rescored with the new rules, and it is published.
    let rescored = admin
        .leads
        .get_lead(GetLeadRequest { id: vp.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(rescored.score, 25);
    let event = app
        .event("sales", "crm.sales.lead.score_changed.v1", &vp.id)
        .await;
    let changed: LeadScoreChanged = prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!((changed.previous_score, changed.score), (0, 25));

    let engage = |days_ago: i64| RecordEngagementRequest {
        lead_id: vp.id.clone(),
        engagement: "email_clicked".into(),
        occurred_at: Some(kit::time::to_timestamp(
            chrono::Utc::now() - chrono::Duration::days(days_ago),
        )),
        request_id: String::new(),
    };
    let keyed = RecordEngagementRequest {
        request_id: "click-1".into(),
        ..engage(0)
    };
    for _ in 0..2 {
        let fresh = admin
            .leads
            .record_engagement(keyed.clone())
            .await
            .unwrap()
            .into_inner()
            .lead
            .unwrap();
        assert_eq!(fresh.score, 35, "a retry with its request id counts once");
    }
    let reused = admin
        .leads
        .record_engagement(RecordEngagementRequest {
            engagement: "meeting_logged".into(),
            ..keyed.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(reused.code(), tonic::Code::AlreadyExists, "{reused:?}");
    let old = admin
        .leads
        .record_engagement(engage(14))
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(
        old.score, 38,
        "a click two half-lives ago counts a quarter (10 / 4 = 2.5, rounded)"
    );
    // A week passes: the scanner rescores, and the clicks are worth half.
    let pool = app.sales_db().admin_pool().await;
    sqlx::query("UPDATE lead_engagements SET occurred_at = occurred_at - interval '7 days'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE lead_decay_schedule SET next_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    let leads = admin.leads.clone();
    eventually("the score decays", Duration::from_secs(15), || {
        let mut leads = leads.clone();
        let id = vp.id.clone();
        async move {
            let lead = leads
                .get_lead(GetLeadRequest { id })
                .await
                .ok()?
                .into_inner()
                .lead?;
            // 25 + 10/2 + 2.5/2 = 31.25
            (lead.score == 31).then_some(())
        }
    })
    .await;
    let (next_at,): (chrono::DateTime<chrono::Utc>,) =
        sqlx::query_as("SELECT next_at FROM lead_decay_schedule")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        next_at > chrono::Utc::now() + chrono::Duration::hours(23),
        "rescored again tomorrow"
    );

    let bad = admin
        .leads
        .record_engagement(RecordEngagementRequest {
            lead_id: vp.id.clone(),
            engagement: "liked".into(),
            occurred_at: None,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["engagement"]);
}

#[tokio::test]
async fn a_conversion_that_fails_half_way_is_completed_by_its_retry() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let pipeline = pipeline(&mut admin).await;
    let qualified = create_lead(
        &mut admin,
        Lead {
            first_name: "Grace".into(),
            email: "grace@navy.example".into(),
            company_domain: "navy.example".into(),
            status: LeadStatus::Qualified as i32,
            ..lead("Hopper", "US", "Government")
        },
    )
    .await;
    // A new lead cannot be converted yet.
    let fresh = create_lead(&mut admin, lead("Neu", "DE", "Retail")).await;
    let early = admin
        .leads
        .convert_lead(ConvertLeadRequest {
            lead_id: fresh.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);

    // The customers service requires a contact field the lead lacks: the
    // account is created, the contact refused, the conversion fails.
    admin
        .fields
        .define_field(customers::DefineFieldRequest {
            field: Some(customers::FieldDefinition {
                entity: customers::Entity::Contact as i32,
                key: "badge".into(),
                label: "Badge".into(),
                r#type: customers::FieldType::Text as i32,
                required: true,
                options: vec![],
            }),
        })
        .await
        .unwrap();
    let convert = ConvertLeadRequest {
        lead_id: qualified.id.clone(),
        create_opportunity: true,
        amount: money("12000"),
        close_date: "2027-03-31".into(),
        ..Default::default()
    };
    let failed = admin.leads.convert_lead(convert.clone()).await.unwrap_err();
    assert_eq!(failed.code(), tonic::Code::FailedPrecondition, "{failed:?}");
    let still = admin
        .leads
        .get_lead(GetLeadRequest {
            id: qualified.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(still.status, LeadStatus::Qualified as i32);
    let no_deals = admin
        .opportunities
        .list_opportunities(ListOpportunitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        no_deals.opportunities.is_empty(),
        "nothing half-written in sales"
    );

    // The field is relaxed; the retry completes and reuses the account.
    admin
        .fields
        .delete_field(customers::DeleteFieldRequest {
            entity: customers::Entity::Contact as i32,
            key: "badge".into(),
        })
        .await
        .unwrap();
    let done = admin
        .leads
        .convert_lead(convert.clone())
        .await
        .unwrap()
        .into_inner();
    let converted = done.lead.unwrap();
    assert_eq!(converted.status, LeadStatus::Converted as i32);
    assert!(
        done.account_reused,
        "the account from the failed attempt is reused"
    );
    let again = admin
        .leads
        .convert_lead(convert)
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(
        (
            &again.converted_account_id,
            &again.converted_contact_id,
            &again.converted_opportunity_id
        ),
        (
            &converted.converted_account_id,
            &converted.converted_contact_id,
            &converted.converted_opportunity_id
        )
    );
    let accounts = admin
        .accounts
        .list_accounts(customers::ListAccountsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .accounts;
    assert_eq!(accounts.len(), 1, "one account, whatever the retries");
    assert_eq!(accounts[0].domain, "navy.example");
    let contacts = admin
        .contacts
        .list_contacts(customers::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].account_id, accounts[0].id);
    let deal = admin
        .opportunities
        .get_opportunity(GetOpportunityRequest {
            id: converted.converted_opportunity_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    assert_eq!(deal.pipeline_id, pipeline.id);
    assert_eq!(deal.stage_id, pipeline.stages[0].id, "first open stage");
    assert_eq!(deal.amount.unwrap().amount, "12000");
    assert_eq!(deal.contacts[0].contact_id, contacts[0].id);
    app.event("sales", "crm.sales.lead.converted.v1", &qualified.id)
        .await;
}

#[tokio::test]
async fn stage_moves_keep_history_and_a_win_makes_the_account_a_customer() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let pipeline = pipeline(&mut admin).await;
    let account = admin
        .accounts
        .create_account(customers::CreateAccountRequest {
            account: Some(customers::Account {
                name: "Initech".into(),
                lifecycle_stage: customers::LifecycleStage::Opportunity as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let bad = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: String::new(),
                probability: 140,
                line_items: vec![LineItem {
                    quantity: "-1".into(),
                    unit_price: money("10"),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        [
            "opportunity.name",
            "opportunity.probability",
            "opportunity.line_items[0].quantity"
        ]
    );
    let deal = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Initech licences".into(),
                account_id: account.id.clone(),
                close_date: "2027-01-15".into(),
                amount: Some(crm_proto::crm::common::v1::Money {
                    amount: String::new(),
                    currency: "EUR".into(),
                }),
                line_items: vec![
                    LineItem {
                        description: "Seats".into(),
                        quantity: "3".into(),
                        unit_price: money("19.99"),
                        discount_percent: "12.5".into(),
                        ..Default::default()
                    },
                    LineItem {
                        description: "Setup".into(),
                        quantity: "1".into(),
                        unit_price: money("0.005"),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            request_id: "deal-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    assert_eq!(deal.line_items[0].total.as_ref().unwrap().amount, "52.47");
    assert_eq!(
        deal.amount.as_ref().unwrap().amount,
        "52.48",
        "the amount is the lines' sum"
    );
    assert_eq!(
        (deal.probability, deal.stage_id.as_str()),
        (10, pipeline.stages[0].id.as_str())
    );

    let mut version = deal.audit.as_ref().unwrap().version;
    let move_to = |stage: usize, reason: &str, version: i64| MoveStageRequest {
        id: deal.id.clone(),
        stage_id: pipeline.stages[stage].id.clone(),
        lost_reason: reason.into(),
        expected_version: version,
    };
    let moved = admin
        .opportunities
        .move_stage(move_to(1, "", version))
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    assert_eq!(moved.probability, 50);
    // A stale version is refused; lost needs a reason.
    let stale = admin
        .opportunities
        .move_stage(move_to(2, "", version))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), tonic::Code::Aborted);
    version = moved.audit.unwrap().version;
    let no_reason = admin
        .opportunities
        .move_stage(move_to(4, "", version))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_reason), ["lost_reason"]);
    let won = admin
        .opportunities
        .move_stage(move_to(3, "", version))
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    assert_eq!(won.status, OpportunityStatus::Won as i32);
    assert!(won.closed_at.is_some());
    let event = app
        .event("sales", "crm.sales.opportunity.won.v1", &deal.id)
        .await;
    let payload: OpportunityWon = prost::Message::decode(event.data.as_slice()).unwrap();
    assert_eq!(
        (
            payload.amount.unwrap().amount.as_str(),
            payload.line_items.len()
        ),
        ("52.48", 2)
    );

    let history = admin
        .opportunities
        .get_stage_history(GetStageHistoryRequest {
            opportunity_id: deal.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let path: Vec<(&str, &str)> = history
        .iter()
        .map(|c| (c.from_stage_id.as_str(), c.to_stage_id.as_str()))
        .collect();
    let s = &pipeline.stages;
    assert_eq!(
        path,
        [
            ("", s[0].id.as_str()),
            (s[0].id.as_str(), s[1].id.as_str()),
            (s[1].id.as_str(), s[3].id.as_str())
        ]
    );

    // Across services: the customers service makes the account a customer.
    let mut accounts = admin.accounts.clone();
    eventually(
        "account becomes a customer",
        Duration::from_secs(15),
        || {
            let mut accounts = accounts.clone();
            let id = account.id.clone();
            async move {
                let account = accounts
                    .get_account(customers::GetAccountRequest { id })
                    .await
                    .ok()?
                    .into_inner()
                    .account?;
                (account.lifecycle_stage == customers::LifecycleStage::Customer as i32)
                    .then_some(())
            }
        },
    )
    .await;
    app.event(
        "customers",
        "crm.customers.account.lifecycle_changed.v1",
        &account.id,
    )
    .await;
    let _ = accounts
        .get_account(customers::GetAccountRequest {
            id: account.id.clone(),
        })
        .await
        .unwrap();

    // The same request id gives the same deal.
    let replay = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "other".into(),
                ..Default::default()
            }),
            request_id: "deal-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    assert_eq!(replay.id, deal.id);
}

#[tokio::test]
async fn forecasts_sum_each_category_against_quota() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let pipeline = pipeline(&mut admin).await;
    let rep = Uuid::now_v7();
    let deal = |name: &str, amount: &str, category: ForecastCategory, close: &str, stage: usize| {
        CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: name.into(),
                amount: money(amount),
                forecast_category: category as i32,
                close_date: close.into(),
                owner_id: rep.to_string(),
                stage_id: pipeline.stages[stage].id.clone(),
                ..Default::default()
            }),
            request_id: String::new(),
        }
    };
    for request in [
        deal("a", "1000.10", ForecastCategory::Pipeline, "2027-01-10", 0), // 10%
        deal("b", "2000", ForecastCategory::BestCase, "2027-02-10", 1),    // 50%
        deal("c", "3000", ForecastCategory::Commit, "2027-03-10", 2),      // 80%
        deal("d", "500", ForecastCategory::Omitted, "2027-03-11", 1),
        deal("e", "4000", ForecastCategory::Closed, "2027-02-01", 3), // won
        deal("f", "9999", ForecastCategory::Commit, "2027-04-01", 2), // next quarter
    ] {
        admin
            .opportunities
            .create_opportunity(request)
            .await
            .unwrap();
    }
    admin
        .forecasts
        .set_quota(SetQuotaRequest {
            quota: Some(Quota {
                user_id: rep.to_string(),
                period_start: "2027-01-01".into(),
                period_end: "2027-03-31".into(),
                amount: money("16000"),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let forecast = admin
        .forecasts
        .get_forecast(GetForecastRequest {
            period_start: "2027-01-01".into(),
            period_end: "2027-03-31".into(),
            owner_id: rep.to_string(),
            currency: "eur".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .forecast
        .unwrap();
    let amount = |m: Option<crm_proto::crm::common::v1::Money>| m.unwrap().amount;
    assert_eq!(amount(forecast.closed_won), "4000.00");
    assert_eq!(amount(forecast.commit), "3000.00");
    assert_eq!(amount(forecast.best_case), "5000.00");
    assert_eq!(amount(forecast.pipeline), "6000.10");
    // 1000.10 x 10% + 2000 x 50% + 3000 x 80% = 100.01 + 1000 + 2400
    assert_eq!(amount(forecast.weighted_pipeline), "3500.01");
    assert_eq!(amount(forecast.quota), "16000.00");
    assert_eq!(forecast.attainment_percent, "25.0");
    assert_eq!((forecast.open_count, forecast.won_count), (4, 1));
    let bad = admin
        .forecasts
        .get_forecast(GetForecastRequest {
            period_start: "2027-03-01".into(),
            period_end: "2027-01-01".into(),
            currency: "EURO".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["period_end", "currency"]);
}

#[tokio::test]
async fn merges_in_customers_repoint_deals_and_erasure_anonymises_leads() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    pipeline(&mut admin).await;
    let account = |name: &str| customers::CreateAccountRequest {
        account: Some(customers::Account {
            name: name.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let keep = admin
        .accounts
        .create_account(account("Keep"))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let gone = admin
        .accounts
        .create_account(account("Gone"))
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let contact = |last: &str| customers::CreateContactRequest {
        contact: Some(customers::Contact {
            last_name: last.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let survivor = admin
        .contacts
        .create_contact(contact("Survivor"))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let merged = admin
        .contacts
        .create_contact(contact("Merged"))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let deal = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Deal".into(),
                account_id: gone.id.clone(),
                contacts: vec![ContactRole {
                    contact_id: merged.id.clone(),
                    role: "champion".into(),
                }],
                amount: money("10"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    admin
        .accounts
        .merge_accounts(customers::MergeAccountsRequest {
            survivor_id: keep.id.clone(),
            merged_id: gone.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .contacts
        .merge_contacts(customers::MergeContactsRequest {
            survivor_id: survivor.id.clone(),
            merged_id: merged.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let opportunities = admin.opportunities.clone();
    eventually(
        "the deal follows both merges",
        Duration::from_secs(15),
        || {
            let mut opportunities = opportunities.clone();
            let (id, keep, survivor) = (deal.id.clone(), keep.id.clone(), survivor.id.clone());
            async move {
                let o = opportunities
                    .get_opportunity(GetOpportunityRequest { id })
                    .await
                    .ok()?
                    .into_inner()
                    .opportunity?;
                (o.account_id == keep
                    && o.contacts[0].contact_id == survivor
                    && o.contacts[0].role == "champion")
                    .then_some(())
            }
        },
    )
    .await;

    // A converted lead's person is erased in customers: the lead loses PII.
    let converted = create_lead(
        &mut admin,
        Lead {
            first_name: "Erika".into(),
            email: "erika@example.de".into(),
            status: LeadStatus::Qualified as i32,
            ..lead("Mustermann", "DE", "Retail")
        },
    )
    .await;
    let done = admin
        .leads
        .convert_lead(ConvertLeadRequest {
            lead_id: converted.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    // Unconverted leads with the person's e-mail (in any case) are hers too;
    // others stay.
    let duplicate = create_lead(
        &mut admin,
        Lead {
            first_name: "Erika".into(),
            email: "ERIKA@example.de".into(),
            ..lead("Mustermann", "AT", "Retail")
        },
    )
    .await;
    let stranger = create_lead(
        &mut admin,
        Lead {
            email: "max@example.de".into(),
            ..lead("Mustermann", "DE", "Retail")
        },
    )
    .await;
    let pool = app.sales_db().admin_pool().await;
    let published = |id: String| {
        let pool = pool.clone();
        async move {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM outbox WHERE aggregate_id = $1::uuid AND published_at IS NOT NULL",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
            count
        }
    };
    eventually(
        "the duplicate's creation is published",
        Duration::from_secs(15),
        || {
            let count = published(duplicate.id.clone());
            async move { (count.await > 0).then_some(()) }
        },
    )
    .await;
    let leads = admin.leads.clone();
    erase(&app, &done.converted_contact_id).await;
    eventually("the lead is anonymised", Duration::from_secs(15), || {
        let mut leads = leads.clone();
        let id = converted.id.clone();
        async move {
            let l = leads
                .get_lead(GetLeadRequest { id })
                .await
                .ok()?
                .into_inner()
                .lead?;
            (l.email.is_empty() && l.first_name.is_empty() && l.last_name == "erased").then_some(())
        }
    })
    .await;
    // Handled by the same event as the converted lead.
    let get = |id: String| {
        let mut leads = admin.leads.clone();
        async move {
            leads
                .get_lead(GetLeadRequest { id })
                .await
                .unwrap()
                .into_inner()
                .lead
                .unwrap()
        }
    };
    let duplicate_now = get(duplicate.id.clone()).await;
    assert_eq!(
        (
            duplicate_now.email.as_str(),
            duplicate_now.first_name.as_str()
        ),
        ("", "")
    );
    assert_eq!(
        published(duplicate.id.clone()).await,
        0,
        "its events left the outbox"
    );
    assert_eq!(get(stranger.id.clone()).await.email, "max@example.de");
}

async fn erase(app: &TestApp, contact_id: &str) {
    let token = app.services.issuer.admin_token(app.tenant);
    let bearer = kit::auth::BearerToken::new(&token).unwrap();
    let channel = app.customers_channel();
    crm_proto::crm::customers::v1::data_service_client::DataServiceClient::with_interceptor(
        channel, bearer,
    )
    .erase_contact(customers::EraseContactRequest {
        contact_id: contact_id.into(),
    })
    .await
    .expect("erase");
}

#[tokio::test]
async fn another_tenants_ids_and_missing_roles_are_refused() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    pipeline(&mut admin).await;
    let mine = create_lead(&mut admin, lead("Secret", "DE", "Retail")).await;
    let deal = admin
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Secret deal".into(),
                amount: money("1"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let mut other = app.client_in(
        Uuid::now_v7(),
        Uuid::now_v7(),
        &[Role::Admin],
        Visibility::Tenant,
        &[],
    );
    assert_eq!(
        other
            .leads
            .get_lead(GetLeadRequest {
                id: mine.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        other
            .opportunities
            .get_opportunity(GetOpportunityRequest {
                id: deal.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    assert_eq!(
        other
            .opportunities
            .move_stage(MoveStageRequest {
                id: deal.id.clone(),
                stage_id: deal.stage_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
    assert!(other
        .opportunities
        .list_opportunities(ListOpportunitiesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .opportunities
        .is_empty());
    // Roles: a viewer reads only; a rep may not configure; own visibility hides others' deals.
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    assert_eq!(
        viewer
            .leads
            .create_lead(CreateLeadRequest {
                lead: Some(lead("X", "", "")),
                request_id: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    assert_eq!(
        rep.pipelines
            .create_pipeline(CreatePipelineRequest {
                pipeline: None,
                request_id: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        rep.opportunities
            .get_opportunity(GetOpportunityRequest {
                id: deal.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
}

#[tokio::test]
async fn a_conversion_while_customers_is_down_changes_nothing_and_says_retry() {
    let mut app = TestApp::spawn().await;
    let mut admin = app.admin();
    pipeline(&mut admin).await;
    let qualified = create_lead(
        &mut admin,
        Lead {
            email: "ada@engines.example".into(),
            status: LeadStatus::Qualified as i32,
            ..lead("Lovelace", "GB", "Computing")
        },
    )
    .await;
    app.stop_customers().await;
    let convert = ConvertLeadRequest {
        lead_id: qualified.id.clone(),
        create_opportunity: true,
        amount: money("10"),
        ..Default::default()
    };
    let down = admin.leads.convert_lead(convert.clone()).await.unwrap_err();
    assert_eq!(down.code(), tonic::Code::Unavailable, "{down:?}");
    let still = admin
        .leads
        .get_lead(GetLeadRequest {
            id: qualified.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(still.status, LeadStatus::Qualified as i32);
    assert!(still.converted_account_id.is_empty());
    let deals = admin
        .opportunities
        .list_opportunities(ListOpportunitiesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        deals.opportunities.is_empty(),
        "no deal without its account"
    );
    // Everything of sales' own still answers.
    admin
        .leads
        .list_leads(ListLeadsRequest::default())
        .await
        .unwrap();
}

/// A request id replays the first call's record to its caller only (or to
/// someone who may see it): another rep reusing the id learns nothing.
#[tokio::test]
async fn a_reused_request_id_does_not_hand_another_callers_record_out() {
    let app = TestApp::spawn().await;
    pipeline(&mut app.admin()).await;
    let mut alice = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let mut bob = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let with_key = |last: &str| CreateLeadRequest {
        lead: Some(Lead {
            owner_id: String::new(),
            ..lead(last, "DE", "")
        }),
        request_id: "import-row-17".into(),
    };
    let first = alice.leads.create_lead(with_key("Secret")).await.unwrap();
    let first = first.into_inner().lead.unwrap();
    let again = alice.leads.create_lead(with_key("Secret")).await.unwrap();
    assert_eq!(
        again.into_inner().lead.unwrap().id,
        first.id,
        "the caller's retry replays"
    );
    let stolen = bob.leads.create_lead(with_key("Secret")).await.unwrap_err();
    assert_eq!(stolen.code(), tonic::Code::AlreadyExists, "{stolen:?}");
    assert!(!stolen.message().contains("Secret"), "{stolen:?}");

    let deal = |name: &str| CreateOpportunityRequest {
        opportunity: Some(Opportunity {
            name: name.into(),
            amount: money("10"),
            ..Default::default()
        }),
        request_id: "deal-key".into(),
    };
    alice
        .opportunities
        .create_opportunity(deal("Hidden"))
        .await
        .unwrap();
    let stolen = bob
        .opportunities
        .create_opportunity(deal("Hidden"))
        .await
        .unwrap_err();
    assert_eq!(stolen.code(), tonic::Code::AlreadyExists, "{stolen:?}");
}

/// Visibility where it was missing: another rep's quota, and leads queued
/// to a team the caller is not in.
#[tokio::test]
async fn quotas_and_team_queues_follow_visibility() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    pipeline(&mut admin).await;
    let (bob_id, their_team) = (Uuid::now_v7(), Uuid::now_v7());
    admin
        .forecasts
        .set_quota(SetQuotaRequest {
            quota: Some(Quota {
                user_id: bob_id.to_string(),
                period_start: "2027-01-01".into(),
                period_end: "2027-03-31".into(),
                amount: money("16000"),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut alice = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let forecast = alice
        .forecasts
        .get_forecast(GetForecastRequest {
            period_start: "2027-01-01".into(),
            period_end: "2027-03-31".into(),
            owner_id: bob_id.to_string(),
            currency: "EUR".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .forecast
        .unwrap();
    assert_eq!(
        forecast.quota, None,
        "another rep's quota is not Alice's to read"
    );

    // A lead routed to another team's queue (no member to rotate to, so
    // no owner) is not in Alice's unassigned queue.
    admin
        .leads
        .set_routing_rules(SetRoutingRulesRequest {
            rules: vec![RoutingRule {
                name: "DACH".into(),
                r#match: Some(TerritoryMatch {
                    country: "de".into(),
                    ..Default::default()
                }),
                target: Some(Target::TeamId(their_team.to_string())),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let queued = admin
        .leads
        .create_lead(CreateLeadRequest {
            lead: Some(lead("Queued", "DE", "")),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .lead
        .unwrap();
    assert_eq!(
        (queued.owner_id.as_str(), queued.team_id.clone()),
        ("", their_team.to_string())
    );
    let mut carol = app.client(&[Role::SalesRep], Visibility::Team, &[their_team]);
    for (who, client, expected) in [("alice", &mut alice, false), ("carol", &mut carol, true)] {
        let listed = client
            .leads
            .list_leads(ListLeadsRequest {
                unassigned: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .leads;
        let seen = listed.iter().any(|l| l.id == queued.id);
        assert_eq!(seen, expected, "{who}: {listed:?}");
    }
}

/// Giving a deal or a lead to someone else is assigning: reps may not,
/// on create or on update; managers may.
#[tokio::test]
async fn reps_cannot_assign_deals_or_leads_to_others() {
    let app = TestApp::spawn().await;
    pipeline(&mut app.admin()).await;
    let team = Uuid::now_v7();
    let mut rep = app.client(&[Role::SalesRep], Visibility::Team, &[team]);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[team]);
    let colleague = Uuid::now_v7().to_string();
    let for_colleague = CreateOpportunityRequest {
        opportunity: Some(Opportunity {
            name: "Theirs".into(),
            amount: money("10"),
            owner_id: colleague.clone(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let refused = rep
        .opportunities
        .create_opportunity(for_colleague.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let refused = rep
        .leads
        .create_lead(CreateLeadRequest {
            lead: Some(Lead {
                owner_id: colleague.clone(),
                ..lead("Theirs", "", "")
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let mine = rep
        .opportunities
        .create_opportunity(CreateOpportunityRequest {
            opportunity: Some(Opportunity {
                name: "Mine".into(),
                amount: money("10"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let hand_over = UpdateOpportunityRequest {
        opportunity: Some(Opportunity {
            id: mine.id.clone(),
            owner_id: colleague.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["owner_id".into()],
        }),
        expected_version: 0,
    };
    let refused = rep
        .opportunities
        .update_opportunity(hand_over.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    manager
        .opportunities
        .update_opportunity(hand_over)
        .await
        .unwrap();
    manager
        .opportunities
        .create_opportunity(for_colleague)
        .await
        .unwrap();
}

/// Winning a deal promotes its account in the customers service: a rep may
/// not win one (by creating it in a won stage, or by moving it there) for
/// an account it cannot see.
#[tokio::test]
async fn a_deal_is_won_only_for_an_account_the_caller_sees() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let stages = pipeline(&mut admin).await.stages;
    let won = stages
        .iter()
        .find(|s| s.kind == StageKind::Won as i32)
        .unwrap()
        .id
        .clone();
    let hidden = create_account(&mut admin, "Not yours").await;
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let deal = |stage_id: &str| CreateOpportunityRequest {
        opportunity: Some(Opportunity {
            name: "Sneaky".into(),
            amount: money("1000"),
            account_id: hidden.id.clone(),
            stage_id: stage_id.to_owned(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let refused = rep
        .opportunities
        .create_opportunity(deal(&won))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["opportunity.account_id"]);

    let open = rep
        .opportunities
        .create_opportunity(deal(""))
        .await
        .unwrap()
        .into_inner()
        .opportunity
        .unwrap();
    let refused = rep
        .opportunities
        .move_stage(MoveStageRequest {
            id: open.id.clone(),
            stage_id: won.clone(),
            lost_reason: String::new(),
            expected_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["opportunity.account_id"]);
    // The admin, who sees the account, may win it.
    admin
        .opportunities
        .move_stage(MoveStageRequest {
            id: open.id,
            stage_id: won,
            lost_reason: String::new(),
            expected_version: 0,
        })
        .await
        .unwrap();
}

/// A meeting logged in customers scores the leads it relates to, but only
/// those its author could see: naming a colleague's lead changes nothing.
#[tokio::test]
async fn a_meeting_scores_only_the_leads_its_author_sees() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    admin
        .leads
        .set_scoring_settings(SetScoringSettingsRequest {
            settings: Some(ScoringSettings {
                rules: vec![ScoringRule {
                    condition: Some(Condition::Engagement("meeting_logged".into())),
                    points: 10,
                    ..Default::default()
                }],
                half_life_days: 30,
            }),
        })
        .await
        .unwrap();
    let rep = |app: &TestApp| app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let (mut author, mut colleague) = (rep(&app), rep(&app));
    let owned_by = |client: &Client| client.user.to_string();
    let author_id = owned_by(&author);
    let own = create_lead(
        &mut author,
        Lead {
            owner_id: author_id,
            ..lead("Own", "DE", "Retail")
        },
    )
    .await;
    let colleague_id = owned_by(&colleague);
    let theirs = create_lead(
        &mut colleague,
        Lead {
            owner_id: colleague_id,
            ..lead("Theirs", "DE", "Retail")
        },
    )
    .await;
    let account = create_account(&mut author, "Meeting GmbH").await;
    let related = |lead: &Lead| customers::RelatedRecord {
        kind: "lead".into(),
        id: lead.id.clone(),
    };
    author
        .activities
        .log_activity(customers::LogActivityRequest {
            activity: Some(customers::Activity {
                kind: customers::ActivityKind::Meeting as i32,
                subject: "Kick-off".into(),
                account_id: account.id.clone(),
                related: vec![related(&own), related(&theirs)],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let score = |id: String| {
        let mut leads = admin.leads.clone();
        async move {
            let lead = leads.get_lead(GetLeadRequest { id }).await.ok()?;
            lead.into_inner().lead.map(|l| l.score)
        }
    };
    eventually("the author's lead scores", Duration::from_secs(15), || {
        let score = score(own.id.clone());
        async move { (score.await? == 10).then_some(()) }
    })
    .await;
    // Both leads were handled in the same event: the colleague's is untouched.
    assert_eq!(score(theirs.id.clone()).await, Some(0));
}
