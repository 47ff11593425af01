//! Loyalty: programs checked, points awarded once per request, redeemed
//! without ever overdrawing under concurrency, expired by the scan, and
//! coupons never redeemed more often than allowed.

use std::time::Duration;

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::marketing::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;

use crate::harness::*;

fn club() -> LoyaltyProgram {
    LoyaltyProgram {
        name: "Club".into(),
        currency: "eur".into(),
        earn_rules: vec![EarnRule {
            event: EarnEvent::OrderCreated as i32,
            points_per_unit: "1".into(),
            fixed_points: 0,
        }],
        tiers: vec![
            Tier {
                name: "Silver".into(),
                threshold: 100,
            },
            Tier {
                name: "Gold".into(),
                threshold: 1000,
            },
        ],
        points_valid_days: 365,
        ..Default::default()
    }
}

fn award(program: &str, contact: &str, points: i64, request_id: &str) -> AwardPointsRequest {
    AwardPointsRequest {
        program_id: program.into(),
        contact_id: contact.into(),
        points,
        reason: "welcome".into(),
        request_id: request_id.into(),
    }
}

fn redeem(program: &str, contact: &str, points: i64, request_id: &str) -> RedeemPointsRequest {
    RedeemPointsRequest {
        program_id: program.into(),
        contact_id: contact.into(),
        points,
        reason: "voucher".into(),
        request_id: request_id.into(),
    }
}

async fn balance(client: &mut Client, program: &str, contact: &str) -> LoyaltyAccount {
    client
        .loyalty
        .get_loyalty_account(GetLoyaltyAccountRequest {
            program_id: program.into(),
            contact_id: contact.into(),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
}

#[tokio::test]
async fn points_are_awarded_once_redeemed_without_overdraw_and_expire() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let ada = create_contact(&mut admin, "Lovelace", "ada@example.com").await;

    let mut bad = club();
    bad.currency = "euro".into();
    bad.tiers[1].threshold = 50;
    bad.points_valid_days = -1;
    let refused = admin
        .loyalty
        .create_loyalty_program(CreateLoyaltyProgramRequest {
            program: Some(bad),
            request_id: String::new(),
        })
        .await
        .expect_err("bad program");
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "program.currency",
            "program.points_valid_days",
            "program.tiers[1].threshold"
        ]
    );
    let mut rep = app.client(&[Role::SalesRep], Visibility::Tenant, &[]);
    let denied = rep
        .loyalty
        .create_loyalty_program(CreateLoyaltyProgramRequest {
            program: Some(club()),
            request_id: String::new(),
        })
        .await
        .expect_err("reps make no programs");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let program = admin
        .loyalty
        .create_loyalty_program(CreateLoyaltyProgramRequest {
            program: Some(club()),
            request_id: String::new(),
        })
        .await
        .expect("program")
        .into_inner()
        .program
        .expect("program");
    assert_eq!(program.currency, "EUR");
    let p = program.id.as_str();

    // Another tenant finds neither the program nor, through it, the
    // member; a marketer who sees only their own contacts cannot award to
    // someone else's; a viewer redeems nothing.
    let mut stranger = app.stranger();
    let hidden = stranger
        .loyalty
        .get_loyalty_account(GetLoyaltyAccountRequest {
            program_id: p.into(),
            contact_id: ada.id.clone(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(hidden.code(), Code::NotFound);
    let mut marketer = app.marketer();
    let unseen = marketer
        .loyalty
        .award_points(award(p, &ada.id, 10, ""))
        .await
        .expect_err("a contact the marketer cannot see");
    assert_eq!(unseen.code(), Code::NotFound);
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let denied = viewer
        .loyalty
        .redeem_points(redeem(p, &ada.id, 1, ""))
        .await
        .expect_err("viewers redeem nothing");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = admin
        .loyalty
        .award_points(AwardPointsRequest {
            reason: String::new(),
            ..award(p, &ada.id, 0, "")
        })
        .await
        .expect_err("no points");
    let mut fields = violated_fields(&bad);
    fields.sort();
    assert_eq!(fields, ["points", "reason"]);

    // An award, retried: one entry, Silver reached once.
    let first = admin
        .loyalty
        .award_points(award(p, &ada.id, 150, "welcome-1"))
        .await
        .expect("award")
        .into_inner();
    let again = admin
        .loyalty
        .award_points(award(p, &ada.id, 150, "welcome-1"))
        .await
        .expect("retry")
        .into_inner();
    let entry = first.entry.map(|e| e.id).expect("entry");
    assert_eq!(again.entry.map(|e| e.id).as_ref(), Some(&entry));
    let account = again.account.expect("account");
    assert_eq!((account.balance, account.tier.as_str()), (150, "Silver"));
    let changed = app
        .event(
            "marketing",
            <LoyaltyTierChanged as DomainEvent>::TYPE,
            &entry,
        )
        .await;
    let changed: LoyaltyTierChanged = kit::events::decode_data(&changed).expect("payload");
    assert_eq!(
        (changed.previous_tier.as_str(), changed.tier.as_str()),
        ("", "Silver")
    );

    // Ten front-line redemptions of 20 at once: seven fit, none overdraws.
    let mut agents = Vec::new();
    for i in 0..10 {
        let mut agent = app.client(&[Role::SupportAgent], Visibility::Tenant, &[]);
        let request = redeem(p, &ada.id, 20, &format!("voucher-{i}"));
        agents.push(tokio::spawn(async move {
            agent.loyalty.redeem_points(request).await.map(|_| ())
        }));
    }
    let (mut spent, mut refused) = (0, 0);
    for agent in agents {
        match agent.await.expect("task") {
            Ok(()) => spent += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!((spent, refused), (7, 3));
    let account = balance(&mut admin, p, &ada.id).await;
    assert_eq!((account.balance, account.lifetime_points), (10, 150));
    let over = admin
        .loyalty
        .redeem_points(redeem(p, &ada.id, 11, ""))
        .await
        .expect_err("more than the balance");
    assert_eq!(over.code(), Code::FailedPrecondition);
    assert!(over.message().contains("10 points"), "{}", over.message());

    // A year passes for every lot: the scan expires what is left (10 of
    // the first lot, 30 of a second), once.
    admin
        .loyalty
        .award_points(award(p, &ada.id, 30, "event"))
        .await
        .expect("award");
    let pool = app.services.db("marketing").admin_pool().await;
    for sql in [
        "UPDATE loyalty_entries SET expires_at = now() - interval '1 second' WHERE expires_at IS NOT NULL",
        "UPDATE loyalty_expiry_schedule SET due_at = now() - interval '1 second'",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("backdated");
    }
    testkit::eventually("the points expire", Duration::from_secs(30), || {
        let mut admin = app.admin();
        let ada = ada.id.clone();
        async move {
            let account = balance(&mut admin, p, &ada).await;
            (account.balance == 0).then_some(account)
        }
    })
    .await;
    let entries = admin
        .loyalty
        .list_loyalty_entries(ListLoyaltyEntriesRequest {
            program_id: p.into(),
            contact_id: ada.id.clone(),
            page: None,
        })
        .await
        .expect("entries")
        .into_inner()
        .entries;
    let kinds: Vec<(i32, i64)> = entries.iter().map(|e| (e.kind, e.points)).collect();
    assert_eq!(kinds.len(), 10, "two awards, seven redemptions, one expiry");
    assert_eq!(kinds[0], (LoyaltyEntryKind::Expired as i32, -40));
    let account = balance(&mut admin, p, &ada.id).await;
    assert_eq!(
        (account.lifetime_points, account.tier.as_str()),
        (180, "Silver")
    );
    assert_eq!(account.next_expiry_at, None);

    // Erasing the person removes their loyalty history.
    app.erase(&ada.id).await;
    testkit::eventually("the history erased", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM loyalty_entries")
                .fetch_one(&pool)
                .await
                .ok()?;
            (left == 0).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn a_coupon_is_never_redeemed_more_often_than_allowed() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let both = admin
        .loyalty
        .create_coupon(CreateCouponRequest {
            coupon: Some(Coupon {
                code: "x".into(),
                percent_off: "10".into(),
                amount_off: Some(Money {
                    amount: "5".into(),
                    currency: "EUR".into(),
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect_err("bad coupon");
    let mut fields = violated_fields(&both);
    fields.sort();
    assert_eq!(fields, ["coupon.code", "coupon.percent_off"]);
    let coupon = admin
        .loyalty
        .create_coupon(CreateCouponRequest {
            coupon: Some(Coupon {
                code: " spring-10 ".into(),
                percent_off: "10.0".into(),
                max_redemptions: 3,
                once_per_contact: true,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .expect("coupon")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(
        (coupon.code.as_str(), coupon.percent_off.as_str()),
        ("SPRING-10", "10")
    );

    let mut people = Vec::new();
    for i in 0..6 {
        people.push(
            create_contact(
                &mut admin,
                &format!("Buyer {i}"),
                &format!("b{i}@example.com"),
            )
            .await
            .id,
        );
    }
    let one = admin
        .loyalty
        .redeem_coupon(RedeemCouponRequest {
            code: "spring-10".into(),
            contact_id: people[0].clone(),
            order_reference: "web-1".into(),
            request_id: String::new(),
        })
        .await
        .expect("first")
        .into_inner()
        .redemption
        .expect("redemption");
    assert_eq!(one.code, "SPRING-10");
    let twice = admin
        .loyalty
        .redeem_coupon(RedeemCouponRequest {
            code: "SPRING-10".into(),
            contact_id: people[0].clone(),
            order_reference: "web-2".into(),
            request_id: String::new(),
        })
        .await
        .expect_err("once per contact");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let event = app
        .event("marketing", <CouponRedeemed as DomainEvent>::TYPE, &one.id)
        .await;
    assert!(event.r#type.ends_with("coupon.redeemed.v1"));

    // Five more people at once for the two redemptions left.
    let mut tries = Vec::new();
    for person in &people[1..] {
        let mut agent = app.client(&[Role::SalesRep], Visibility::Tenant, &[]);
        let request = RedeemCouponRequest {
            code: "SPRING-10".into(),
            contact_id: person.clone(),
            order_reference: String::new(),
            request_id: String::new(),
        };
        tries.push(tokio::spawn(async move {
            agent.loyalty.redeem_coupon(request).await.map(|_| ())
        }));
    }
    let mut redeemed = 0;
    for t in tries {
        match t.await.expect("task") {
            Ok(()) => redeemed += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(redeemed, 2);
    let read = admin
        .loyalty
        .get_coupon(GetCouponRequest {
            id: coupon.id.clone(),
        })
        .await
        .expect("coupon")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(read.redemptions, 3);

    // Another tenant neither reads nor redeems it.
    let mut stranger = app.stranger();
    let hidden = stranger
        .loyalty
        .get_coupon(GetCouponRequest {
            id: coupon.id.clone(),
        })
        .await
        .expect_err("another tenant");
    assert_eq!(hidden.code(), Code::NotFound);
    let theirs = create_contact(&mut stranger, "Other", "o@example.com").await;
    let missing = stranger
        .loyalty
        .redeem_coupon(RedeemCouponRequest {
            code: "SPRING-10".into(),
            contact_id: theirs.id,
            order_reference: String::new(),
            request_id: String::new(),
        })
        .await
        .expect_err("not their coupon");
    assert_eq!(missing.code(), Code::NotFound);
}
