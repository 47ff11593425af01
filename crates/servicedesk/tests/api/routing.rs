use std::collections::HashMap;

use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

fn skill(name: &str, level: i32) -> SkillLevel {
    SkillLevel {
        skill: name.into(),
        level,
    }
}

async fn put_agent(
    client: &mut Client,
    user: Uuid,
    skills: Vec<SkillLevel>,
    groups: &[Uuid],
    capacity: i32,
) -> Result<Agent, tonic::Status> {
    client
        .routing
        .put_agent(PutAgentRequest {
            agent: Some(Agent {
                user_id: user.to_string(),
                skills,
                group_ids: groups.iter().map(Uuid::to_string).collect(),
                capacity,
                ..Default::default()
            }),
            expected_version: 0,
        })
        .await
        .map(|r| r.into_inner().agent.expect("agent"))
}

async fn set_availability(
    client: &mut Client,
    user: Uuid,
    availability: Availability,
) -> Result<Agent, tonic::Status> {
    client
        .routing
        .set_availability(SetAvailabilityRequest {
            user_id: user.to_string(),
            availability: availability as i32,
        })
        .await
        .map(|r| r.into_inner().agent.expect("agent"))
}

async fn group_mode(client: &mut Client, group: Uuid, mode: AssignmentMode, reassign: bool) {
    client
        .routing
        .put_group_routing(PutGroupRoutingRequest {
            routing: Some(GroupRouting {
                group_id: group.to_string(),
                mode: mode as i32,
                reassign_when_offline: reassign,
                ..Default::default()
            }),
        })
        .await
        .expect("group routing");
}

async fn agent(client: &mut Client, user: Uuid) -> Agent {
    client
        .routing
        .get_agent(GetAgentRequest {
            user_id: user.to_string(),
        })
        .await
        .expect("agent")
        .into_inner()
        .agent
        .expect("agent")
}

/// The group's open tickets by holder ("" = waiting), as the tickets say.
async fn holders(client: &mut Client, group: Uuid) -> HashMap<String, Vec<Ticket>> {
    let tickets = client
        .tickets
        .list_tickets(ListTicketsRequest {
            group_id: group.to_string(),
            open_only: true,
            page: Some(crm_proto::crm::common::v1::PageRequest {
                page_size: 500,
                page_token: String::new(),
            }),
            ..Default::default()
        })
        .await
        .expect("tickets")
        .into_inner()
        .tickets;
    let mut by = HashMap::<String, Vec<Ticket>>::new();
    for t in tickets {
        by.entry(t.assignee_id.clone()).or_default().push(t);
    }
    by
}

fn held(by: &HashMap<String, Vec<Ticket>>, user: Uuid) -> usize {
    by.get(&user.to_string()).map_or(0, Vec::len)
}

#[tokio::test]
async fn twenty_concurrent_tickets_from_two_pods_go_by_skill_and_never_past_capacity() {
    let mut app = TestApp::spawn().await;
    app.second_instance().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    group_mode(&mut admin, group, AssignmentMode::LeastLoaded, false).await;
    let (expert, novice, french, resting) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    put_agent(
        &mut admin,
        expert,
        vec![skill("language:de", 3)],
        &[group],
        3,
    )
    .await
    .unwrap();
    put_agent(
        &mut admin,
        novice,
        vec![skill("Language:DE", 1)],
        &[group],
        3,
    )
    .await
    .unwrap();
    put_agent(
        &mut admin,
        french,
        vec![skill("language:fr", 2)],
        &[group],
        5,
    )
    .await
    .unwrap();
    put_agent(
        &mut admin,
        resting,
        vec![skill("language:de", 5)],
        &[group],
        10,
    )
    .await
    .unwrap();
    for user in [expert, novice, french] {
        let online = set_availability(&mut admin, user, Availability::Online)
            .await
            .unwrap();
        assert_eq!(online.availability, Availability::Online as i32);
    }

    // 20 German tickets, moved into the group at once, half through each
    // pod (creates would queue on the tenant's number counter; moves do
    // not, so the routings really race).
    let mut drafts = Vec::new();
    for i in 0..20 {
        let priority = if i == 19 {
            TicketPriority::Urgent
        } else {
            TicketPriority::Normal
        };
        let draft = Ticket {
            required_skills: vec![skill("language:de", 1)],
            priority: priority as i32,
            ..subject(&format!("Frage {i}"))
        };
        drafts.push(create(&mut admin, draft).await.unwrap());
    }
    let moves = drafts.iter().enumerate().map(|(i, draft)| {
        let pod = if i % 2 == 0 {
            "servicedesk"
        } else {
            "servicedesk-2"
        };
        let mut client = app.admin_of(pod);
        let moved = Ticket {
            id: draft.id.clone(),
            group_id: group.to_string(),
            ..Default::default()
        };
        async move {
            update(&mut client, moved, &["group_id"])
                .await
                .expect("move")
        }
    });
    let created = futures::future::join_all(moves).await;
    let assigned = created.iter().filter(|t| !t.assignee_id.is_empty()).count();
    assert_eq!(assigned, 6, "two German agents with three places each");

    let by = holders(&mut admin, group).await;
    assert_eq!(held(&by, expert), 3);
    assert_eq!(held(&by, novice), 3);
    assert_eq!(held(&by, french), 0, "lacks the skill");
    assert_eq!(held(&by, resting), 0, "offline");
    assert_eq!(by.get("").map_or(0, Vec::len), 14);
    for user in [expert, novice, french, resting] {
        let counted = agent(&mut admin, user).await.open_tickets as usize;
        assert_eq!(
            counted,
            held(&by, user),
            "open_tickets of {user} match its tickets"
        );
    }

    // A place freed goes to the most urgent waiting ticket.
    let done = &by[&expert.to_string()][0];
    status(&mut admin, &done.id, TicketStatus::Solved)
        .await
        .unwrap();
    let by = holders(&mut admin, group).await;
    assert_eq!(held(&by, expert), 3);
    let urgent = &created[19];
    if urgent.assignee_id.is_empty() {
        assert!(by[&expert.to_string()].iter().any(|t| t.id == urgent.id));
    }
    assert_eq!(agent(&mut admin, expert).await.open_tickets, 3);

    // A ticket needing level 3 waits for the expert alone.
    let hard = create(
        &mut admin,
        Ticket {
            group_id: group.to_string(),
            required_skills: vec![skill("language:de", 3)],
            ..subject("Schwierig")
        },
    )
    .await
    .unwrap();
    assert_eq!(hard.assignee_id, "");

    // The agent coming online takes waiting tickets up to capacity.
    set_availability(&mut admin, resting, Availability::Online)
        .await
        .unwrap();
    let by = holders(&mut admin, group).await;
    assert_eq!(held(&by, resting), 10);
    assert_eq!(agent(&mut admin, resting).await.open_tickets, 10);
    assert_eq!(by.get("").map_or(0, Vec::len), 14 - 10);
    app.services.stop().await;
}

#[tokio::test]
async fn round_robin_takes_turns_and_an_offline_agent_hands_tickets_back() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    group_mode(&mut admin, group, AssignmentMode::RoundRobin, true).await;
    let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
    for user in [x, y] {
        put_agent(&mut admin, user, vec![], &[group], 10)
            .await
            .unwrap();
        set_availability(&mut admin, user, Availability::Online)
            .await
            .unwrap();
    }
    let mut turns = Vec::new();
    for i in 0..4 {
        app.clock.advance(chrono::Duration::seconds(1));
        let t = create(
            &mut admin,
            Ticket {
                group_id: group.to_string(),
                ..subject(&format!("Turn {i}"))
            },
        )
        .await
        .unwrap();
        turns.push(t.assignee_id);
    }
    assert_ne!(turns[0], turns[1]);
    assert_eq!(turns[0], turns[2]);
    assert_eq!(turns[1], turns[3]);

    // An agent sets their own availability; going offline hands back.
    let mut agent_x = app.client_in(
        app.tenant,
        x,
        &[Role::SupportAgent],
        Visibility::Team,
        &[group],
    );
    let denied = set_availability(&mut agent_x, y, Availability::Offline)
        .await
        .expect_err("not another agent's");
    assert_eq!(denied.code(), Code::PermissionDenied);
    set_availability(&mut agent_x, x, Availability::Offline)
        .await
        .unwrap();
    let by = holders(&mut admin, group).await;
    assert_eq!(held(&by, x), 0);
    assert_eq!(held(&by, y), 4);
    assert_eq!(agent(&mut admin, x).await.open_tickets, 0);
    assert_eq!(agent(&mut admin, y).await.open_tickets, 4);
    let history = admin
        .tickets
        .list_ticket_history(ListTicketHistoryRequest {
            ticket_id: by[&y.to_string()][0].id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    assert!(history
        .iter()
        .any(|c| c.field == "assignee_id" && c.actor == "system:servicedesk"));
    app.services.stop().await;
}

#[tokio::test]
async fn routing_settings_are_checked_and_kept_to_their_tenant_and_roles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let bad = admin
        .routing
        .put_agent(PutAgentRequest {
            agent: Some(Agent {
                user_id: "someone".into(),
                skills: vec![skill("bad skill", 7)],
                group_ids: vec!["g".into()],
                capacity: 0,
                ..Default::default()
            }),
            expected_version: 0,
        })
        .await
        .expect_err("bad agent");
    assert_eq!(
        violated_fields(&bad),
        [
            "agent.user_id",
            "agent.skills[0].skill",
            "agent.skills[0].level",
            "agent.capacity",
            "agent.group_ids[0]"
        ]
    );
    let bad = admin
        .routing
        .put_group_routing(PutGroupRoutingRequest {
            routing: Some(GroupRouting {
                group_id: group.to_string(),
                mode: 9,
                ..Default::default()
            }),
        })
        .await
        .expect_err("bad mode");
    assert_eq!(violated_fields(&bad), ["routing.mode"]);
    let bad = create(
        &mut admin,
        Ticket {
            required_skills: vec![skill("", 1)],
            ..subject("Needs nothing")
        },
    )
    .await
    .expect_err("bad skill");
    assert_eq!(violated_fields(&bad), ["ticket.required_skills[0].skill"]);

    let user = Uuid::now_v7();
    put_agent(&mut admin, user, vec![skill("tier:2", 2)], &[group], 5)
        .await
        .unwrap();
    group_mode(&mut admin, group, AssignmentMode::LeastLoaded, false).await;
    let mut agent_client = app.agent(&[group]);
    let me = agent_client.user;
    let denied = put_agent(&mut agent_client, me, vec![], &[group], 100)
        .await
        .expect_err("agents do not set their own capacity");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = agent_client
        .routing
        .put_group_routing(PutGroupRoutingRequest {
            routing: Some(GroupRouting {
                group_id: group.to_string(),
                mode: AssignmentMode::Manual as i32,
                ..Default::default()
            }),
        })
        .await
        .expect_err("agents do not change modes");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Another tenant neither sees nor reaches ours.
    let mut stranger = app.stranger();
    let hidden = stranger
        .routing
        .get_agent(GetAgentRequest {
            user_id: user.to_string(),
        })
        .await
        .expect_err("another tenant's agent");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = set_availability(&mut stranger, user, Availability::Online)
        .await
        .expect_err("another tenant's agent");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = stranger
        .routing
        .get_group_routing(GetGroupRoutingRequest {
            group_id: group.to_string(),
        })
        .await
        .expect_err("another tenant's group");
    assert_eq!(hidden.code(), Code::NotFound);
    // Their agent in a group of the same id takes none of our tickets.
    put_agent(&mut stranger, user, vec![], &[group], 5)
        .await
        .unwrap();
    set_availability(&mut stranger, user, Availability::Online)
        .await
        .unwrap();
    let ours = create(
        &mut admin,
        Ticket {
            group_id: group.to_string(),
            ..subject("Ours")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        ours.assignee_id, "",
        "our agent is offline; theirs is not ours"
    );
    let listed = stranger
        .routing
        .list_agents(ListAgentsRequest {
            page: None,
            group_id: group.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].open_tickets, 0);
    app.services.stop().await;
}
