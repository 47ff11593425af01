//! The marketing dashboard: campaigns, members, messages and attribution
//! published as marketing publishes them, leads and a won deal through the
//! real sales service; every figure worked out by hand.

use std::time::Duration;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::marketing::v1 as marketing;
use crm_proto::crm::reporting::v1::*;
use crm_proto::crm::sales::v1 as sales;
use kit::auth::{Role, Visibility};
use uuid::Uuid;

use crate::harness::{violated_fields, Client, TestApp};

fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: currency.into(),
    })
}

async fn campaign(
    app: &TestApp,
    r#type: marketing::CampaignType,
    cost: &str,
    currency: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    let created = marketing::CampaignCreated {
        campaign: Some(marketing::Campaign {
            id: id.to_string(),
            name: "Spring".into(),
            r#type: r#type as i32,
            status: marketing::CampaignStatus::Active as i32,
            budget: money("1000", currency),
            ..Default::default()
        }),
    };
    app.services.publish(app.tenant, id, &created).await;
    let cost = marketing::CampaignCostAdded {
        cost: Some(marketing::CostEntry {
            id: Uuid::now_v7().to_string(),
            campaign_id: id.to_string(),
            amount: money(cost, currency),
            ..Default::default()
        }),
        actual_cost: money(cost, currency),
    };
    app.services.publish(app.tenant, id, &cost).await;
    id
}

async fn dashboard(
    client: &mut Client,
    request: GetMarketingDashboardRequest,
) -> Result<MarketingDashboard, tonic::Status> {
    client
        .dashboards
        .get_marketing_dashboard(request)
        .await
        .map(|r| r.into_inner().dashboard.expect("dashboard"))
}

#[tokio::test]
async fn campaign_reach_response_leads_and_roi_side_by_side() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let spring = campaign(&app, marketing::CampaignType::Email, "500", "EUR").await;
    let ads = campaign(&app, marketing::CampaignType::Ads, "300", "USD").await;

    // Four members, two of whom responded.
    let members = (0..4)
        .map(|i| marketing::CampaignMember {
            id: Uuid::now_v7().to_string(),
            campaign_id: spring.to_string(),
            status: marketing::MemberStatus::Targeted as i32,
            responded_at: (i < 2).then(|| kit::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .collect();
    let added = marketing::CampaignMembersAdded {
        campaign_id: spring.to_string(),
        members,
    };
    app.services.publish(app.tenant, spring, &added).await;
    // Ten messages: two bounce, four are opened, two of those clicked
    // (twice each: counted once), one unsubscribes.
    for i in 0..10 {
        let recipient = Uuid::now_v7().to_string();
        let sent = marketing::MessageSent {
            send_id: Uuid::now_v7().to_string(),
            recipient_id: recipient.clone(),
            campaign_id: spring.to_string(),
            ..Default::default()
        };
        app.services.publish(app.tenant, spring, &sent).await;
        let id = || (recipient.clone(), spring.to_string());
        if i < 2 {
            let (recipient_id, campaign_id) = id();
            let bounced = marketing::MessageBounced {
                recipient_id,
                campaign_id,
                permanent: true,
                ..Default::default()
            };
            app.services.publish(app.tenant, spring, &bounced).await;
        } else if i < 6 {
            let (recipient_id, campaign_id) = id();
            let opened = marketing::MessageOpened {
                recipient_id,
                campaign_id,
                ..Default::default()
            };
            app.services.publish(app.tenant, spring, &opened).await;
            if i < 4 {
                for _ in 0..2 {
                    let (recipient_id, campaign_id) = id();
                    let clicked = marketing::MessageClicked {
                        recipient_id,
                        campaign_id,
                        ..Default::default()
                    };
                    app.services.publish(app.tenant, spring, &clicked).await;
                }
            }
        } else if i == 6 {
            let (recipient_id, campaign_id) = id();
            let unsubscribed = marketing::MessageUnsubscribed {
                recipient_id,
                campaign_id,
                ..Default::default()
            };
            app.services
                .publish(app.tenant, spring, &unsubscribed)
                .await;
        }
    }

    // Two leads from the campaign and a won deal of 2,000, in sales.
    let rep = Uuid::now_v7();
    for last in ["Kowalski", "Nakamura"] {
        admin
            .leads
            .create_lead(sales::CreateLeadRequest {
                lead: Some(sales::Lead {
                    last_name: last.into(),
                    company: format!("{last} GmbH"),
                    campaign_id: spring.to_string(),
                    owner_id: rep.to_string(),
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .expect("lead");
    }
    let pipeline = crate::harness::won_lost_pipeline(&mut admin).await;
    let account = testkit::grpc::create_account(&mut admin.accounts, "Acme", "").await;
    let deal = admin
        .opportunities
        .create_opportunity(sales::CreateOpportunityRequest {
            opportunity: Some(sales::Opportunity {
                name: "Acme seats".into(),
                pipeline_id: pipeline.id.clone(),
                stage_id: pipeline.stages[1].id.clone(),
                account_id: account.id.clone(),
                amount: money("2000", "EUR"),
                campaign_id: spring.to_string(),
                owner_id: rep.to_string(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("won deal")
        .into_inner()
        .opportunity
        .expect("deal");
    // Marketing's attribution of that deal: all of it to the spring
    // campaign first and last touch, half of it linear.
    let share = |model: marketing::AttributionModel, amount: &str| marketing::AttributionShare {
        campaign_id: spring.to_string(),
        model: model as i32,
        amount: money(amount, "EUR"),
    };
    let attribution = marketing::AttributionComputed {
        opportunity_id: deal.id.clone(),
        amount: money("2000", "EUR"),
        shares: vec![
            share(marketing::AttributionModel::FirstTouch, "2000"),
            share(marketing::AttributionModel::LastTouch, "2000"),
            share(marketing::AttributionModel::Linear, "1000"),
        ],
    };
    app.services
        .publish(app.tenant, deal.id.parse().expect("id"), &attribution)
        .await;

    let all = testkit::eventually(
        "the campaigns' figures are in",
        Duration::from_secs(30),
        || {
            let mut admin = app.admin();
            async move {
                let d = dashboard(&mut admin, GetMarketingDashboardRequest::default())
                    .await
                    .ok()?;
                let spring = d.campaigns.iter().find(|c| c.cost == "500.00")?;
                let done = spring.sent == 10
                    && spring.clicked == 2
                    && spring.unsubscribed == 1
                    && spring.leads == 2
                    && spring.won == 1
                    && spring.members == 4
                    && spring.attribution.iter().any(|a| a.amount == "1000.00");
                done.then_some(d)
            }
        },
    )
    .await;
    assert_eq!(all.currency, "EUR", "a tie goes to the first by code");
    assert_eq!(all.campaigns.len(), 2);
    let figures = all
        .campaigns
        .iter()
        .find(|c| c.campaign_id == spring.to_string())
        .expect("spring");
    assert_eq!(
        (
            figures.r#type.as_str(),
            figures.status.as_str(),
            figures.budget.as_str()
        ),
        ("email", "active", "1000.00")
    );
    assert_eq!(
        (
            figures.responded,
            figures.response_rate_percent.as_str(),
            figures.bounced,
            figures.opened,
            figures.open_rate_percent.as_str(),
            figures.click_rate_percent.as_str(),
            figures.click_to_open_percent.as_str()
        ),
        (2, "50", 2, 4, "50", "25", "50")
    );
    assert_eq!(
        (figures.cost_per_lead.as_str(), figures.won_amount.as_str()),
        ("250.00", "2000.00")
    );
    let roi: Vec<(&str, &str, &str)> = figures
        .attribution
        .iter()
        .map(|a| (a.model.as_str(), a.amount.as_str(), a.roi_percent.as_str()))
        .collect();
    assert_eq!(
        roi,
        [
            ("first_touch", "2000.00", "300"),
            ("last_touch", "2000.00", "300"),
            ("linear", "1000.00", "100")
        ]
    );
    // The total adds up the euro campaigns only.
    let total = all.total.as_ref().expect("total");
    assert_eq!(
        (
            total.cost.as_str(),
            total.sent,
            total.leads,
            total.currency.as_str()
        ),
        ("500.00", 10, 2, "EUR")
    );
    let dollars = dashboard(
        &mut admin,
        GetMarketingDashboardRequest {
            currency: "USD".into(),
            ..Default::default()
        },
    )
    .await
    .expect("dashboard");
    let total = dollars.total.expect("total");
    assert_eq!((total.cost.as_str(), total.sent), ("300.00", 0));
    assert!(dollars
        .campaigns
        .iter()
        .any(|c| c.campaign_id == ads.to_string()));

    // A rep who owns none of the leads and deals sees the campaigns (the
    // tenant's, as in marketing) but not others' leads and wins.
    let mut other = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let theirs = dashboard(&mut other, GetMarketingDashboardRequest::default())
        .await
        .expect("dashboard");
    let seen = theirs
        .campaigns
        .iter()
        .find(|c| c.campaign_id == spring.to_string())
        .expect("spring");
    assert_eq!((seen.sent, seen.leads, seen.won), (10, 0, 0));
    // Another tenant sees no campaign; bad input is named.
    let mut stranger = app.client_in(Uuid::now_v7(), &[Role::Admin], Visibility::Tenant, &[]);
    let nothing = dashboard(&mut stranger, GetMarketingDashboardRequest::default())
        .await
        .expect("dashboard");
    assert!(nothing.campaigns.is_empty());
    let bad = dashboard(
        &mut admin,
        GetMarketingDashboardRequest {
            team_id: "growth".into(),
            currency: "€".into(),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad input");
    assert_eq!(violated_fields(&bad), ["team_id", "currency"]);
}
