//! Chat connectors: signed posts open and continue conversations' tickets.

use crm_proto::crm::servicedesk::v1::*;
use kit::auth::{Role, Visibility};
use kit::links::LinkKey;
use serde_json::json;
use tonic::Code;
use uuid::Uuid;

use crate::harness::*;

/// A post as the gateway hands it over, signed with `secret` at `at`.
fn post(key: &str, secret: &str, at: i64, body: serde_json::Value) -> ReceiveChatMessageRequest {
    let body = body.to_string().into_bytes();
    ReceiveChatMessageRequest {
        channel_key: key.into(),
        signature: LinkKey::from_secret(secret).sign_body(at, &body),
        body,
        timestamp: at,
    }
}

fn message(conversation: &str, id: &str, text: &str) -> serde_json::Value {
    json!({"conversation_id": conversation, "message_id": id, "text": text,
           "from": {"name": "Ada Lovelace", "phone": "+4915112345678"}})
}

#[tokio::test]
async fn signed_posts_open_and_continue_a_conversations_ticket() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let group = Uuid::now_v7();
    let refused = app
        .agent(&[group])
        .channels
        .create_chat_channel(CreateChatChannelRequest {
            channel: Some(ChatChannel {
                name: "Web chat".into(),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("agents do not configure channels");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let created = admin
        .channels
        .create_chat_channel(CreateChatChannelRequest {
            channel: Some(ChatChannel {
                name: "Web chat".into(),
                group_id: group.to_string(),
                ..Default::default()
            }),
            request_id: "chat-1".into(),
        })
        .await
        .expect("channel")
        .into_inner();
    let channel = created.channel.expect("channel");
    let secret = created.signing_secret;
    assert_eq!(
        channel.key,
        format!("{}.{}", app.tenant.simple(), channel.id.replace('-', ""))
    );
    let now = app.clock.now().timestamp();

    // The gateway's public route (the service role) hands posts over.
    let mut gateway = app.integration();
    let first = gateway
        .channels
        .receive_chat_message(post(
            &channel.key,
            &secret,
            now,
            message("c-1", "m-1", "Where is my order?"),
        ))
        .await
        .expect("received")
        .into_inner();
    assert!(first.opened);
    let ticket = admin
        .tickets
        .get_ticket(GetTicketRequest {
            id: first.ticket_id.clone(),
        })
        .await
        .expect("ticket")
        .into_inner()
        .ticket
        .expect("ticket");
    assert_eq!(ticket.subject, "Chat: Where is my order?");
    assert_eq!(ticket.channel, TicketChannel::Chat as i32);
    assert_eq!(ticket.group_id, group.to_string());
    let requester = admin
        .contacts
        .get_contact(crm_proto::crm::customers::v1::GetContactRequest {
            id: ticket.requester_contact_id.clone(),
        })
        .await
        .expect("the sender is a contact")
        .into_inner()
        .contact
        .expect("contact");
    assert_eq!(requester.phones[0].number, "+4915112345678");

    // The conversation continues its ticket; a repeated post adds nothing.
    for _ in 0..2 {
        let next = gateway
            .channels
            .receive_chat_message(post(
                &channel.key,
                &secret,
                now,
                message("c-1", "m-2", "Any news?"),
            ))
            .await
            .expect("received")
            .into_inner();
        assert_eq!(
            (next.ticket_id.as_str(), next.opened),
            (first.ticket_id.as_str(), false)
        );
    }
    let messages = admin
        .tickets
        .list_messages(ListMessagesRequest {
            ticket_id: first.ticket_id.clone(),
            ..Default::default()
        })
        .await
        .expect("messages")
        .into_inner()
        .messages;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        (messages[0].body.as_str(), messages[0].channel),
        ("Any news?", TicketChannel::Chat as i32)
    );

    // Nothing that does not verify gets in: a wrong secret, an old post,
    // another tenant's service, a user, a channel key of nonsense.
    let unverified = [
        post(
            &channel.key,
            "wrong secret",
            now,
            message("c-1", "m-3", "x"),
        ),
        post(&channel.key, &secret, now - 301, message("c-1", "m-3", "x")),
        post(
            &format!("{}.{}", app.tenant.simple(), Uuid::now_v7().simple()),
            &secret,
            now,
            message("c-1", "m-3", "x"),
        ),
        post("nonsense", &secret, now, message("c-1", "m-3", "x")),
    ];
    for request in unverified {
        let refused = gateway
            .channels
            .receive_chat_message(request)
            .await
            .expect_err("does not verify");
        assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    }
    let elsewhere = app
        .client_in(
            Uuid::now_v7(),
            Uuid::now_v7(),
            &[Role::Service],
            Visibility::Tenant,
            &[],
        )
        .channels
        .clone()
        .receive_chat_message(post(&channel.key, &secret, now, message("c-1", "m-3", "x")))
        .await
        .expect_err("another tenant");
    assert_eq!(elsewhere.code(), Code::Unauthenticated);
    let user = admin
        .channels
        .receive_chat_message(post(&channel.key, &secret, now, message("c-1", "m-3", "x")))
        .await
        .expect_err("users do not post");
    assert_eq!(user.code(), Code::PermissionDenied);

    // Bad posts are named field by field.
    let bad = gateway
        .channels
        .receive_chat_message(post(
            &channel.key,
            &secret,
            now,
            json!({"conversation_id": "c-2", "message_id": "", "text": " ",
                   "from": {"email": "not mail"}}),
        ))
        .await
        .expect_err("invalid");
    assert_eq!(violated_fields(&bad), ["message_id", "text", "from.email"]);

    // A rotated secret replaces the old one at once.
    let rotated = admin
        .channels
        .rotate_chat_secret(RotateChatSecretRequest {
            id: channel.id.clone(),
        })
        .await
        .expect("rotated")
        .into_inner()
        .signing_secret;
    assert_ne!(rotated, secret);
    let old = gateway
        .channels
        .receive_chat_message(post(
            &channel.key,
            &secret,
            now,
            message("c-3", "m-4", "Hello"),
        ))
        .await
        .expect_err("the old secret");
    assert_eq!(old.code(), Code::Unauthenticated);
    gateway
        .channels
        .receive_chat_message(post(
            &channel.key,
            &rotated,
            now,
            message("c-3", "m-4", "Hello"),
        ))
        .await
        .expect("the new secret");

    // Another tenant sees none of it; deleted, the channel takes no posts.
    let mut stranger = app.stranger();
    let theirs = stranger
        .channels
        .list_chat_channels(ListChatChannelsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .channels;
    assert!(theirs.is_empty());
    let missing = stranger
        .channels
        .rotate_chat_secret(RotateChatSecretRequest {
            id: channel.id.clone(),
        })
        .await
        .expect_err("not theirs");
    assert_eq!(missing.code(), Code::NotFound);
    admin
        .channels
        .delete_chat_channel(DeleteChatChannelRequest {
            id: channel.id.clone(),
        })
        .await
        .expect("deleted");
    let gone = gateway
        .channels
        .receive_chat_message(post(
            &channel.key,
            &rotated,
            now,
            message("c-3", "m-5", "Hello?"),
        ))
        .await
        .expect_err("deleted");
    assert_eq!(gone.code(), Code::Unauthenticated);
}
