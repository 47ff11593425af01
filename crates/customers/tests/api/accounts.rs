use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1::*;
use tonic::Code;

use crate::harness::*;

#[tokio::test]
async fn accounts_keep_money_exact_and_hierarchy_valid() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let parent = create_account(&mut admin, "Holding", "holding.example").await;
    let created = admin
        .accounts
        .create_account(CreateAccountRequest {
            account: Some(Account {
                name: "Analytical Engines".into(),
                website: "https://www.engines.example/about".into(),
                annual_revenue: Some(Money {
                    amount: "1250000.10".into(),
                    currency: "eur".into(),
                }),
                parent_account_id: parent.id.clone(),
                size_band: SizeBand::SizeBand51200 as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(created.domain, "engines.example");
    assert_eq!(
        created.annual_revenue,
        Some(Money {
            amount: "1250000.1".into(),
            currency: "EUR".into()
        })
    );
    app.event("crm.customers.account.created.v1", &created.id)
        .await;

    let bad = admin
        .accounts
        .create_account(CreateAccountRequest {
            account: Some(Account {
                name: String::new(),
                phone: "12".into(),
                annual_revenue: Some(Money {
                    amount: "1.5e3".into(),
                    currency: "EUR".into(),
                }),
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        [
            "account.name",
            "account.phone",
            "account.annual_revenue.amount"
        ]
    );

    let contact_at = create_contact(
        &mut admin,
        Contact {
            account_id: created.id.clone(),
            ..contact("A", "B", "")
        },
    )
    .await;
    assert_eq!(contact_at.account_id, created.id);

    let duplicate = create_account(&mut admin, "Analytical Engines GmbH", "engines.example").await;
    let found = admin
        .accounts
        .find_duplicate_accounts(FindDuplicateAccountsRequest {
            account_id: created.id.clone(),
            limit: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .duplicates;
    assert_eq!(found[0].account.as_ref().unwrap().id, duplicate.id);
    assert_eq!(found[0].reasons, ["same domain"]);

    let merged = admin
        .accounts
        .merge_accounts(MergeAccountsRequest {
            survivor_id: created.id.clone(),
            merged_id: duplicate.id.clone(),
            take_from_merged: vec![],
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(merged.name, "Analytical Engines");
    assert_eq!(
        admin
            .accounts
            .get_account(GetAccountRequest {
                id: duplicate.id.clone()
            })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    app.event("crm.customers.account.merged.v1", &duplicate.id)
        .await;

    let moved = admin
        .accounts
        .transfer_accounts(TransferAccountsRequest {
            from_owner_id: admin.user.to_string(),
            to_owner_id: uuid::Uuid::now_v7().to_string(),
            to_team_id: String::new(),
            filter: Some(condition(
                "domain",
                Operator::Eq,
                string_value("engines.example"),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .transferred;
    assert_eq!(moved, 1);
}
