use crm_proto::crm::servicedesk::v1::*;
use crm_proto::events::DomainEvent;
use kit::auth::{Role, Visibility};
use tonic::Code;

use crate::harness::*;

fn draft(title: &str, body: &str, language: &str, audience: ArticleAudience) -> Article {
    Article {
        title: title.into(),
        body: body.into(),
        language: language.into(),
        audience: audience as i32,
        ..Default::default()
    }
}

async fn write(client: &mut Client, a: Article) -> Result<Article, tonic::Status> {
    client
        .knowledge
        .create_article(CreateArticleRequest {
            article: Some(a),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().article.expect("article"))
}

async fn publish(client: &mut Client, id: &str) -> Result<Article, tonic::Status> {
    client
        .knowledge
        .publish_article(PublishArticleRequest { id: id.into() })
        .await
        .map(|r| r.into_inner().article.expect("article"))
}

async fn search(
    client: &mut Client,
    query: &str,
    language: &str,
    public_only: bool,
) -> Vec<ArticleHit> {
    client
        .knowledge
        .search_articles(SearchArticlesRequest {
            query: query.into(),
            language: language.into(),
            public_only,
            limit: 0,
        })
        .await
        .expect("search")
        .into_inner()
        .hits
}

fn titles(hits: &[ArticleHit]) -> Vec<&str> {
    hits.iter().map(|h| h.title.as_str()).collect()
}

#[tokio::test]
async fn articles_are_written_published_found_by_stemmed_words_and_rated() {
    let app = TestApp::spawn().await;
    let mut agent = app.agent(&[]);
    let mut manager = app.client(&[Role::Manager], Visibility::Tenant, &[]);
    let mut categories = Vec::new();
    for _ in 0..2 {
        let category = manager
            .knowledge
            .create_category(CreateCategoryRequest {
                category: Some(ArticleCategory {
                    name: "Billing".into(),
                    ..Default::default()
                }),
                request_id: "billing-category".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .category
            .unwrap();
        categories.push(category);
    }
    // A retry with the same request id answers with the first.
    assert_eq!(categories[0].id, categories[1].id);
    let billing = categories.remove(0);
    let invoices = write(
        &mut agent,
        Article {
            category_id: billing.id.clone(),
            tags: vec!["billing".into()],
            ..draft(
                "Correcting an invoice",
                "When an invoice shows the wrong address, open the order and correct the billing address; the corrected invoices are sent again.",
                "en",
                ArticleAudience::Public,
            )
        },
    )
    .await
    .unwrap();
    assert_eq!(invoices.status, ArticleStatus::Draft as i32);
    assert_eq!(invoices.revision, 1);
    let passwort = write(
        &mut agent,
        draft(
            "Passwort zurücksetzen",
            "Öffnen Sie die Einstellungen und wählen Sie Passwörter zurücksetzen.",
            "de",
            ArticleAudience::Public,
        ),
    )
    .await
    .unwrap();
    let internal = write(
        &mut agent,
        draft(
            "Refund approvals",
            "Refunds of invoices above 500 need a manager's approval.",
            "en",
            ArticleAudience::Internal,
        ),
    )
    .await
    .unwrap();

    // Drafts are found by nobody.
    assert!(search(&mut agent, "invoice", "", false).await.is_empty());
    let denied = publish(&mut agent, &invoices.id)
        .await
        .expect_err("agents do not publish");
    assert_eq!(denied.code(), Code::PermissionDenied);
    for a in [&invoices, &passwort, &internal] {
        publish(&mut manager, &a.id).await.unwrap();
    }
    let published = app
        .event("servicedesk", ArticlePublished::TYPE, &invoices.id)
        .await;
    let published: ArticlePublished = prost::Message::decode(published.data.as_slice()).unwrap();
    assert_eq!(published.title, "Correcting an invoice");

    // Stemmed: "invoices" finds "invoice"; the title outranks the body.
    let hits = search(&mut agent, "invoices", "", false).await;
    assert_eq!(
        titles(&hits),
        vec!["Correcting an invoice", "Refund approvals"]
    );
    assert!(hits[0].snippet.contains('«'), "{}", hits[0].snippet);
    assert!(hits[0].rank > hits[1].rank);
    // German stems: "Passwörter" in the body, "Passwort" asked for.
    let hits = search(&mut agent, "passwörter", "de", false).await;
    assert_eq!(titles(&hits), vec!["Passwort zurücksetzen"]);
    // A customer's view: public only.
    let hits = search(&mut agent, "invoices", "", true).await;
    assert_eq!(titles(&hits), vec!["Correcting an invoice"]);
    // Hostile query text is only words.
    let hits = search(&mut agent, "'); DROP TABLE articles; -- & | !", "", false).await;
    assert!(hits.is_empty());

    // Suggestions for a ticket: any of its words.
    let mut admin = app.admin();
    let t = create(
        &mut admin,
        Ticket {
            description: "The invoice has my old address".into(),
            ..subject("Wrong invoice")
        },
    )
    .await
    .unwrap();
    let suggested = admin
        .knowledge
        .suggest_articles(SuggestArticlesRequest {
            ticket_id: t.id.clone(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(suggested[0].title, "Correcting an invoice");

    // An edit of the text is a revision; the old one is kept.
    let edited = agent
        .knowledge
        .update_article(UpdateArticleRequest {
            article: Some(Article {
                id: invoices.id.clone(),
                title: "Correcting an invoice address".into(),
                ..Default::default()
            }),
            update_mask: mask(&["title"]),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!(edited.revision, 2);
    let revisions = agent
        .knowledge
        .list_article_revisions(ListArticleRevisionsRequest {
            article_id: invoices.id.clone(),
            page: None,
        })
        .await
        .unwrap()
        .into_inner()
        .revisions;
    let listed: Vec<(i32, &str)> = revisions
        .iter()
        .map(|r| (r.revision, r.title.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (2, "Correcting an invoice address"),
            (1, "Correcting an invoice")
        ]
    );

    // One vote per reader; a second replaces the first.
    let mut rep = app.client(&[Role::SalesRep], Visibility::Own, &[]);
    for helpful in [false, true] {
        rep.knowledge
            .rate_article(RateArticleRequest {
                article_id: invoices.id.clone(),
                helpful,
                comment: String::new(),
            })
            .await
            .unwrap();
    }
    let rated = agent
        .knowledge
        .rate_article(RateArticleRequest {
            article_id: invoices.id.clone(),
            helpful: false,
            comment: "Missing a screenshot".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .article
        .unwrap();
    assert_eq!((rated.helpful_count, rated.not_helpful_count), (1, 1));
    app.services.stop().await;
}

#[tokio::test]
async fn drafts_stay_with_the_writers_and_the_knowledge_base_with_its_tenant() {
    let app = TestApp::spawn().await;
    let mut agent = app.agent(&[]);
    let bad = write(
        &mut agent,
        Article {
            category_id: uuid::Uuid::now_v7().to_string(),
            ..draft("", "", "english?", ArticleAudience::Public)
        },
    )
    .await
    .expect_err("bad article");
    assert_eq!(
        violated_fields(&bad),
        ["article.title", "article.body", "article.language"]
    );
    let unknown = write(
        &mut agent,
        Article {
            category_id: uuid::Uuid::now_v7().to_string(),
            ..draft("Title", "Body", "en", ArticleAudience::Public)
        },
    )
    .await
    .expect_err("no such category");
    assert_eq!(violated_fields(&unknown), ["article.category_id"]);
    let a = write(
        &mut agent,
        draft("Draft", "Not yet", "en", ArticleAudience::Public),
    )
    .await
    .unwrap();

    // A viewer reads published articles only.
    let mut viewer = app.client(&[Role::Viewer], Visibility::Tenant, &[]);
    let hidden = viewer
        .knowledge
        .get_article(GetArticleRequest { id: a.id.clone() })
        .await
        .expect_err("a draft");
    assert_eq!(hidden.code(), Code::NotFound);
    let denied = write(
        &mut viewer,
        draft("Mine", "Text", "en", ArticleAudience::Public),
    )
    .await
    .expect_err("viewers do not write");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let short = viewer
        .knowledge
        .search_articles(SearchArticlesRequest {
            query: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("too short");
    assert_eq!(violated_fields(&short), ["query"]);

    // Another tenant reaches nothing.
    let mut stranger = app.stranger();
    let calls = [
        stranger
            .knowledge
            .get_article(GetArticleRequest { id: a.id.clone() })
            .await
            .map(|_| ()),
        stranger
            .knowledge
            .publish_article(PublishArticleRequest { id: a.id.clone() })
            .await
            .map(|_| ()),
        stranger
            .knowledge
            .rate_article(RateArticleRequest {
                article_id: a.id.clone(),
                helpful: true,
                comment: String::new(),
            })
            .await
            .map(|_| ()),
        stranger
            .knowledge
            .list_article_revisions(ListArticleRevisionsRequest {
                article_id: a.id.clone(),
                page: None,
            })
            .await
            .map(|_| ()),
    ];
    for call in calls {
        assert_eq!(call.expect_err("another tenant").code(), Code::NotFound);
    }
    let listed = stranger
        .knowledge
        .list_articles(ListArticlesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .articles;
    assert!(listed.is_empty(), "another tenant lists none of ours");
    let mut admin = app.admin();
    publish(&mut admin, &a.id).await.unwrap();
    assert!(search(&mut stranger, "draft", "", false).await.is_empty());
    assert_eq!(search(&mut viewer, "draft", "", false).await.len(), 1);
    app.services.stop().await;
}

async fn find(client: &mut Client, query: &str) -> Vec<(i32, String)> {
    client
        .search
        .search(SearchRequest {
            query: query.into(),
            limit: 0,
        })
        .await
        .expect("search")
        .into_inner()
        .hits
        .into_iter()
        .map(|h| (h.kind, h.title))
        .collect()
}

#[tokio::test]
async fn the_search_across_services_finds_the_tickets_one_sees_and_published_articles() {
    let app = TestApp::spawn().await;
    let mut admin = app.admin();
    let (ours, theirs) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (group, subject_text) in [
        (ours, "Printer jammed on floor 2"),
        (theirs, "Printer toner empty"),
    ] {
        create(
            &mut admin,
            Ticket {
                group_id: group.to_string(),
                ..subject(subject_text)
            },
        )
        .await
        .unwrap();
    }
    let article = write(
        &mut admin,
        draft(
            "Printer troubleshooting",
            "Turn it off and on.",
            "en",
            ArticleAudience::Internal,
        ),
    )
    .await
    .unwrap();
    let mut agent = app.agent(&[ours]);
    let ticket = HitKind::Ticket as i32;
    assert_eq!(
        find(&mut agent, "printer").await,
        vec![(ticket, "Printer jammed on floor 2".to_owned())]
    );
    publish(&mut admin, &article.id).await.unwrap();
    let mut found = find(&mut agent, "printer").await;
    found.sort();
    assert_eq!(
        found,
        vec![
            (ticket, "Printer jammed on floor 2".to_owned()),
            (
                HitKind::Article as i32,
                "Printer troubleshooting".to_owned()
            ),
        ]
    );
    // Typos are tolerated, as in the other services.
    assert_eq!(find(&mut agent, "priner jamed").await.len(), 1);
    assert_eq!(find(&mut admin, "printer").await.len(), 3);
    assert!(find(&mut app.stranger(), "printer").await.is_empty());
    app.services.stop().await;
}
