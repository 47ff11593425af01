//! After-sales context: sales' orders, learnt from `order.created`, shown
//! with the tickets of the people who placed them.

use std::time::Duration;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1 as sales;
use crm_proto::crm::servicedesk::v1::*;
use tonic::Code;
use uuid::Uuid;

use crate::harness::{contact, create, subject, Client, TestApp};

async fn order_created(app: &TestApp, account: Uuid, contacts: &[&str], amount: &str) -> Uuid {
    let id = Uuid::now_v7();
    let event = sales::OrderCreated {
        order: Some(sales::Order {
            id: id.to_string(),
            total: Some(Money {
                amount: amount.into(),
                currency: "EUR".into(),
            }),
            ..Default::default()
        }),
        account_id: account.to_string(),
        contact_ids: contacts.iter().map(|c| c.to_string()).collect(),
    };
    app.services.publish(app.tenant, id, &event).await;
    id
}

async fn context(
    client: &mut Client,
    ticket: &str,
) -> Result<GetTicketContextResponse, tonic::Status> {
    client
        .tickets
        .get_ticket_context(GetTicketContextRequest {
            ticket_id: ticket.into(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn tickets_show_what_their_requester_ordered() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = contact(&mut admin, "Lovelace").await;
    let grace = contact(&mut admin, "Hopper").await;
    let account = Uuid::now_v7();
    let first = order_created(&app, account, &[&ada.id], "1234.50").await;
    let second = order_created(&app, account, &[&grace.id, &ada.id], "99.99").await;
    order_created(&app, Uuid::now_v7(), &[&grace.id], "5").await;

    let probe = create(
        &mut admin,
        Ticket {
            requester_contact_id: ada.id.clone(),
            ..subject("Where is my order?")
        },
    )
    .await
    .expect("created");
    let recent = testkit::eventually("the orders are known", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let id = probe.id.clone();
        async move {
            let recent = context(&mut admin, &id).await.ok()?.recent_orders;
            (recent.len() == 2).then_some(recent)
        }
    })
    .await;
    let ids: Vec<&str> = recent.iter().map(|o| o.id.as_str()).collect();
    assert!(
        ids.contains(&first.to_string().as_str()) && ids.contains(&second.to_string().as_str())
    );

    // A return naming the order takes its account; the order is shown
    // with its exact total.
    let ret = create(
        &mut admin,
        Ticket {
            r#type: TicketType::Return as i32,
            requester_contact_id: ada.id.clone(),
            order_id: first.to_string(),
            ..subject("Return the engine")
        },
    )
    .await
    .expect("created");
    assert_eq!(ret.account_id, account.to_string());
    let shown = context(&mut admin, &ret.id).await.expect("context");
    let order = shown.order.expect("the named order");
    assert_eq!(
        order.total,
        Some(Money {
            amount: "1234.50".into(),
            currency: "EUR".into()
        })
    );
    assert_eq!(order.contact_ids, std::slice::from_ref(&ada.id));

    // Only for those who see the ticket.
    let hidden = context(&mut app.agent(&[]), &ret.id)
        .await
        .expect_err("an agent outside its group");
    assert_eq!(hidden.code(), Code::NotFound);
    let foreign = context(&mut app.stranger(), &ret.id)
        .await
        .expect_err("another tenant");
    assert_eq!(foreign.code(), Code::NotFound);

    // Erasing Ada takes her off the orders.
    app.erase(&ada.id).await;
    let order = testkit::eventually("the order forgets her", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let id = ret.id.clone();
        let erased = ada.id.clone();
        async move {
            let order = context(&mut admin, &id).await.ok()?.order?;
            (!order.contact_ids.contains(&erased)).then_some(order)
        }
    })
    .await;
    assert!(order.contact_ids.is_empty());
}
