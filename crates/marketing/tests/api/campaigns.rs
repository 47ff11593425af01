use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use prost::Message as _;
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    })
}

async fn set_status(
    client: &mut Client,
    campaign: &Campaign,
    status: CampaignStatus,
) -> Result<Campaign, tonic::Status> {
    client
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: campaign.id.clone(),
                status: status as i32,
                ..Default::default()
            }),
            update_mask: mask(&["status"]),
            expected_version: 0,
        })
        .await
        .map(|r| r.into_inner().campaign.expect("a campaign"))
}

#[tokio::test]
async fn a_campaign_is_created_changed_and_moves_through_its_statuses() {
    let app = TestApp::spawn().await;
    let mut marketer = app.marketer();
    let created = create_campaign(
        &mut marketer,
        Campaign {
            tags: vec!["Spring".into(), "spring ".into(), "EU".into()],
            budget: money("1000.50", "eur"),
            ..named("  Spring launch ")
        },
    )
    .await;
    assert_eq!(created.name, "Spring launch");
    assert_eq!(created.status, CampaignStatus::Planned as i32);
    assert_eq!(created.owner_id, marketer.user.to_string());
    assert_eq!(created.tags, vec!["spring", "eu"]);
    assert_eq!(created.budget, money("1000.5", "EUR"));
    let event = app
        .event("marketing", CampaignCreated::TYPE, &created.id)
        .await;
    let payload = CampaignCreated::decode(event.data.as_slice()).expect("payload");
    assert_eq!(payload.campaign.expect("campaign").name, "Spring launch");

    // Planned cannot jump to completed; the error names the field.
    let refused = set_status(&mut marketer, &created, CampaignStatus::Completed)
        .await
        .expect_err("planned -> completed");
    assert_eq!(violated_fields(&refused), vec!["campaign.status"]);
    assert!(refused.message().contains("planned"), "{refused:?}");

    let active = set_status(&mut marketer, &created, CampaignStatus::Active)
        .await
        .expect("planned -> active");
    assert_eq!(active.audit.as_ref().map(|a| a.version), Some(2));
    let event = app
        .event("marketing", CampaignStatusChanged::TYPE, &created.id)
        .await;
    let moved = CampaignStatusChanged::decode(event.data.as_slice()).expect("payload");
    assert_eq!(
        (moved.previous_status, moved.status),
        (
            CampaignStatus::Planned as i32,
            CampaignStatus::Active as i32
        )
    );

    // A stale write is refused; a fresh one changes only the masked field.
    let stale = marketer
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: created.id.clone(),
                goal: "Fill the pipeline".into(),
                ..Default::default()
            }),
            update_mask: mask(&["goal"]),
            expected_version: 1,
        })
        .await
        .expect_err("stale version");
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    let changed = marketer
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: created.id.clone(),
                goal: "Fill the pipeline".into(),
                name: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: mask(&["goal"]),
            expected_version: 2,
        })
        .await
        .expect("update goal")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(changed.goal, "Fill the pipeline");
    assert_eq!(changed.name, "Spring launch");
    assert_eq!(changed.budget, money("1000.5", "EUR"));

    let done = set_status(&mut marketer, &changed, CampaignStatus::Completed)
        .await
        .expect("active -> completed");
    let reopened = set_status(&mut marketer, &done, CampaignStatus::Active)
        .await
        .expect_err("completed is final");
    assert_eq!(violated_fields(&reopened), vec!["campaign.status"]);
}

#[tokio::test]
async fn bad_campaigns_are_refused_naming_every_field() {
    let app = TestApp::spawn().await;
    let mut marketer = app.marketer();
    let refused = marketer
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                name: " ".into(),
                r#type: 42,
                budget: money("12,50", "EUR"),
                expected_revenue: money("100", "USD"),
                parent_campaign_id: "nope".into(),
                starts_at: Some(prost_types::Timestamp {
                    seconds: 2_000,
                    nanos: 0,
                }),
                ends_at: Some(prost_types::Timestamp {
                    seconds: 1_000,
                    nanos: 0,
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("invalid campaign");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "campaign.budget.amount",
            "campaign.ends_at",
            "campaign.name",
            "campaign.parent_campaign_id",
            "campaign.type",
        ]
    );
    let unknown_parent = marketer
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                parent_campaign_id: Uuid::now_v7().to_string(),
                ..named("Child")
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("unknown parent");
    assert_eq!(
        violated_fields(&unknown_parent),
        vec!["campaign.parent_campaign_id"]
    );

    // A parent cannot become its own descendant's child.
    let parent = create_campaign(&mut marketer, named("Parent")).await;
    let child = create_campaign(
        &mut marketer,
        Campaign {
            parent_campaign_id: parent.id.clone(),
            ..named("Child")
        },
    )
    .await;
    let cycle = marketer
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: parent.id.clone(),
                parent_campaign_id: child.id.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["parent_campaign_id"]),
            expected_version: 0,
        })
        .await
        .expect_err("cycle");
    assert_eq!(violated_fields(&cycle), vec!["campaign.parent_campaign_id"]);
    let unknown_path = marketer
        .campaigns
        .update_campaign(UpdateCampaignRequest {
            campaign: Some(Campaign {
                id: parent.id.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["actual_cost"]),
            expected_version: 0,
        })
        .await
        .expect_err("output-only field in the mask");
    assert_eq!(violated_fields(&unknown_path), vec!["update_mask.paths[0]"]);
}

#[tokio::test]
async fn a_retried_create_answers_with_the_first_campaign() {
    let app = TestApp::spawn().await;
    let mut marketer = app.marketer();
    let request = CreateCampaignRequest {
        campaign: Some(named("Webinar")),
        request_id: "retry-1".into(),
    };
    let first = marketer
        .campaigns
        .create_campaign(request.clone())
        .await
        .expect("first")
        .into_inner();
    let again = marketer
        .campaigns
        .create_campaign(request)
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first.campaign.map(|c| c.id), again.campaign.map(|c| c.id));
    let other = marketer
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(named("Another")),
            request_id: "retry-1".into(),
        })
        .await
        .expect_err("same id, other request");
    assert_eq!(other.code(), Code::AlreadyExists, "{other:?}");
}

#[tokio::test]
async fn costs_add_up_exactly_in_the_campaign_currency() {
    let app = TestApp::spawn().await;
    let mut marketer = app.marketer();
    let campaign = create_campaign(
        &mut marketer,
        Campaign {
            budget: money("500", "EUR"),
            ..named("Trade show")
        },
    )
    .await;
    let add = |amount: &str, currency: &str, request_id: &str| {
        let request = AddCampaignCostRequest {
            cost: Some(CostEntry {
                campaign_id: campaign.id.clone(),
                amount: money(amount, currency),
                description: "booth".into(),
                ..Default::default()
            }),
            request_id: request_id.into(),
        };
        let mut client = marketer.campaigns.clone();
        async move {
            client
                .add_campaign_cost(request)
                .await
                .map(|r| r.into_inner())
        }
    };
    add("0.1", "EUR", "").await.expect("first cost");
    let second = add("0.2", "EUR", "cost-2").await.expect("second cost");
    assert_eq!(second.actual_cost, money("0.3", "EUR"));
    // A retry books nothing more.
    let retried = add("0.2", "EUR", "cost-2").await.expect("retry");
    assert_eq!(
        retried.cost.as_ref().map(|c| &c.id),
        second.cost.as_ref().map(|c| &c.id)
    );
    let refund = add("-0.05", "EUR", "").await.expect("refund");
    assert_eq!(refund.actual_cost, money("0.25", "EUR"));
    let wrong = add("10", "USD", "").await.expect_err("other currency");
    assert_eq!(violated_fields(&wrong), vec!["cost.amount.currency"]);
    let zero = add("0", "EUR", "").await.expect_err("zero");
    assert_eq!(violated_fields(&zero), vec!["cost.amount.amount"]);

    let read = marketer
        .campaigns
        .get_campaign(GetCampaignRequest {
            id: campaign.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(read.actual_cost, money("0.25", "EUR"));
    let costs = marketer
        .campaigns
        .list_campaign_costs(ListCampaignCostsRequest {
            campaign_id: campaign.id.clone(),
            page: Some(crm_proto::crm::common::v1::PageRequest {
                page_size: 2,
                page_token: String::new(),
            }),
        })
        .await
        .expect("costs")
        .into_inner();
    assert_eq!(costs.costs.len(), 2);
    assert_eq!(costs.costs[0].amount, money("0.1", "EUR"));
    assert!(!costs.page.expect("page").next_page_token.is_empty());
    let events = app
        .services
        .nats
        .events("marketing", CampaignCostAdded::TYPE, 3)
        .await;
    assert_eq!(
        events.len(),
        3,
        "one event per booked cost, none for the retry"
    );
}

#[tokio::test]
async fn members_come_from_contacts_and_segments_and_only_move_forward() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = create_contact(&mut admin, "Lovelace", "ada@example.com").await;
    let alan = create_contact(&mut admin, "Turing", "alan@example.com").await;
    let grace = create_contact(&mut admin, "Hopper", "grace@example.com").await;
    let segment = admin
        .segments
        .create_segment(crm_proto::crm::customers::v1::CreateSegmentRequest {
            segment: Some(crm_proto::crm::customers::v1::Segment {
                name: "Pioneers".into(),
                kind: crm_proto::crm::customers::v1::SegmentKind::Static as i32,
                ..Default::default()
            }),
            contact_ids: vec![alan.id.clone(), grace.id.clone()],
            request_id: String::new(),
        })
        .await
        .expect("segment")
        .into_inner()
        .segment
        .expect("segment");
    let campaign = create_campaign(&mut admin, named("Newsletter")).await;
    let added = add_contacts(&mut admin, &campaign.id, &[&ada.id, &alan.id])
        .await
        .expect("add contacts");
    assert_eq!((added.added, added.already_members), (2, 0));
    let from_segment = admin
        .campaigns
        .add_campaign_members(AddCampaignMembersRequest {
            campaign_id: campaign.id.clone(),
            segment_id: segment.id.clone(),
            ..Default::default()
        })
        .await
        .expect("add segment")
        .into_inner();
    assert_eq!((from_segment.added, from_segment.already_members), (1, 1));
    let all = members(&mut admin, &campaign.id).await;
    let mut contacts: Vec<&str> = all.iter().map(|m| m.contact_id.as_str()).collect();
    contacts.sort();
    let mut expected = vec![ada.id.as_str(), alan.id.as_str(), grace.id.as_str()];
    expected.sort();
    assert_eq!(contacts, expected);
    assert!(all
        .iter()
        .all(|m| m.status == MemberStatus::Targeted as i32));

    let member = all.iter().find(|m| m.contact_id == ada.id).expect("ada");
    let status = |next: MemberStatus| {
        let request = SetMemberStatusRequest {
            campaign_id: campaign.id.clone(),
            member_id: member.id.clone(),
            status: next as i32,
        };
        let mut client = admin.campaigns.clone();
        async move {
            client
                .set_member_status(request)
                .await
                .expect("set status")
                .into_inner()
                .member
                .expect("member")
        }
    };
    let clicked = status(MemberStatus::Clicked).await;
    assert!(clicked.clicked_at.is_some());
    let still = status(MemberStatus::Opened).await;
    assert_eq!(still.status, MemberStatus::Clicked as i32);
    assert!(still.opened_at.is_some(), "the open is still recorded");
    let read = admin
        .campaigns
        .get_campaign(GetCampaignRequest {
            id: campaign.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .campaign
        .expect("campaign");
    assert_eq!(read.member_counts.get("MEMBER_STATUS_CLICKED"), Some(&1));
    assert_eq!(read.member_counts.get("MEMBER_STATUS_TARGETED"), Some(&2));
    let events = app
        .services
        .nats
        .events("marketing", CampaignMembersAdded::TYPE, 2)
        .await;
    let published: usize = events
        .iter()
        .map(|e| {
            CampaignMembersAdded::decode(e.data.as_slice())
                .expect("payload")
                .members
                .len()
        })
        .sum();
    assert_eq!(published, 3, "one entry per member made");
}

#[tokio::test]
async fn members_are_refused_when_the_caller_cannot_see_the_contact() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let someone_elses = create_contact(&mut admin, "Hidden", "hidden@example.com").await;
    let mut marketer = app.marketer();
    let campaign = create_campaign(&mut marketer, named("Mine")).await;
    let refused = add_contacts(&mut marketer, &campaign.id, &[&someone_elses.id])
        .await
        .expect_err("a contact the marketer cannot see");
    assert_eq!(violated_fields(&refused), vec!["contact_ids[0]"]);
    let malformed = add_contacts(&mut marketer, &campaign.id, &["x"])
        .await
        .expect_err("not an id");
    assert_eq!(violated_fields(&malformed), vec!["contact_ids[0]"]);
    assert!(members(&mut admin, &campaign.id).await.is_empty());
}

#[tokio::test]
async fn roles_visibility_and_tenants_fence_campaigns() {
    let app = TestApp::spawn().await;
    let mut owner = app.marketer();
    let campaign = create_campaign(&mut owner, named("Owned")).await;

    // A rep reads campaigns but changes none.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    let read = rep
        .campaigns
        .get_campaign(GetCampaignRequest {
            id: campaign.id.clone(),
        })
        .await
        .expect("a rep reads campaigns");
    assert_eq!(
        read.into_inner().campaign.map(|c| c.name),
        Some("Owned".into())
    );
    let denied = rep
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(named("Rep's")),
            request_id: String::new(),
        })
        .await
        .expect_err("reps do not create campaigns");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Another marketer with own visibility reads it but cannot change it,
    // book costs on it or add members.
    let mut colleague = app.marketer();
    let change = set_status(&mut colleague, &campaign, CampaignStatus::Active)
        .await
        .expect_err("a colleague's campaign");
    assert_eq!(change.code(), Code::PermissionDenied, "{change:?}");
    let cost = colleague
        .campaigns
        .add_campaign_cost(AddCampaignCostRequest {
            cost: Some(CostEntry {
                campaign_id: campaign.id.clone(),
                amount: money("10", "EUR"),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("costs on a colleague's campaign");
    assert_eq!(cost.code(), Code::PermissionDenied);
    let handed = colleague
        .campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                owner_id: owner.user.to_string(),
                ..named("For someone else")
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("own visibility cannot hand campaigns to others");
    assert_eq!(handed.code(), Code::PermissionDenied);

    // Another tenant's admin finds nothing under the same id.
    let mut stranger = app.stranger();
    let hidden = stranger
        .campaigns
        .get_campaign(GetCampaignRequest {
            id: campaign.id.clone(),
        })
        .await
        .expect_err("another tenant's campaign");
    assert_eq!(hidden.code(), Code::NotFound);
    let foreign = set_status(&mut stranger, &campaign, CampaignStatus::Cancelled)
        .await
        .expect_err("another tenant's campaign");
    assert_eq!(foreign.code(), Code::NotFound);
    let listed = stranger
        .campaigns
        .list_campaigns(ListCampaignsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.campaigns.is_empty());
}

#[tokio::test]
async fn campaigns_list_newest_first_with_filters_and_pages() {
    let app = TestApp::spawn().await;
    let mut marketer = app.marketer();
    let mut made = Vec::new();
    for i in 0..5 {
        let campaign = Campaign {
            tags: if i % 2 == 0 {
                vec!["even".into()]
            } else {
                vec![]
            },
            r#type: if i < 3 {
                CampaignType::Email as i32
            } else {
                CampaignType::Webinar as i32
            },
            ..named(&format!("Campaign {i}"))
        };
        made.push(create_campaign(&mut marketer, campaign).await);
    }
    let list = |request: ListCampaignsRequest| {
        let mut client = marketer.campaigns.clone();
        async move {
            client
                .list_campaigns(request)
                .await
                .expect("list")
                .into_inner()
        }
    };
    let first = list(ListCampaignsRequest {
        page: Some(crm_proto::crm::common::v1::PageRequest {
            page_size: 3,
            page_token: String::new(),
        }),
        ..Default::default()
    })
    .await;
    let names: Vec<&str> = first.campaigns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Campaign 4", "Campaign 3", "Campaign 2"]);
    let rest = list(ListCampaignsRequest {
        page: Some(crm_proto::crm::common::v1::PageRequest {
            page_size: 3,
            page_token: first.page.expect("page").next_page_token,
        }),
        ..Default::default()
    })
    .await;
    let names: Vec<&str> = rest.campaigns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Campaign 1", "Campaign 0"]);
    let even_webinars = list(ListCampaignsRequest {
        tag: "EVEN".into(),
        r#type: CampaignType::Webinar as i32,
        ..Default::default()
    })
    .await;
    let names: Vec<&str> = even_webinars
        .campaigns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["Campaign 4"]);
    let bad = marketer
        .campaigns
        .list_campaigns(ListCampaignsRequest {
            status: 77,
            owner_id: "someone".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad filters");
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, vec!["owner_id", "status"]);
}
