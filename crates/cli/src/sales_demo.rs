//! Demo sales data for the demo tenant: a pipeline, a small catalogue with
//! a euro price book, one deal per demo account and two leads. Safe to run
//! again: deals and leads carry request ids, the rest is looked up first.

use anyhow::Context as _;
use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::catalog_service_client::CatalogServiceClient;
use crm_proto::crm::sales::v1::lead_service_client::LeadServiceClient;
use crm_proto::crm::sales::v1::opportunity_service_client::OpportunityServiceClient;
use crm_proto::crm::sales::v1::pipeline_service_client::PipelineServiceClient;
use crm_proto::crm::sales::v1::*;
use kit::auth::BearerToken;
use tonic::transport::Channel;

fn stage(name: &str, probability: i32, kind: StageKind) -> Stage {
    Stage {
        name: name.into(),
        probability,
        kind: kind as i32,
        ..Default::default()
    }
}

fn euros(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: "EUR".into(),
    })
}

/// `deals`: (account id, contact id, deal name, amount) per demo account.
pub async fn seed(
    channel: Channel,
    bearer: BearerToken,
    deals: &[(String, String, String, &str)],
) -> anyhow::Result<()> {
    let mut pipelines = PipelineServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let existing = pipelines
        .list_pipelines(ListPipelinesRequest {})
        .await?
        .into_inner()
        .pipelines;
    let pipeline = match existing.into_iter().find(|p| p.is_default) {
        Some(p) => p,
        None => pipelines
            .create_pipeline(CreatePipelineRequest {
                request_id: String::new(),
                pipeline: Some(Pipeline {
                    name: "New business".into(),
                    is_default: true,
                    stages: vec![
                        stage("Qualify", 10, StageKind::Open),
                        stage("Propose", 40, StageKind::Open),
                        stage("Negotiate", 70, StageKind::Open),
                        stage("Won", 100, StageKind::Won),
                        stage("Lost", 0, StageKind::Lost),
                    ],
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .pipeline
            .context("no pipeline returned")?,
    };

    let mut catalog = CatalogServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let products = catalog
        .list_products(ListProductsRequest {
            include_inactive: true,
            page: None,
        })
        .await?
        .into_inner()
        .products;
    let mut entries = Vec::new();
    for (sku, name, price) in [
        ("SEAT", "CRM seat (yearly)", "480"),
        ("ONBOARD", "Onboarding package", "2500"),
    ] {
        let product = match products.iter().find(|p| p.sku == sku) {
            Some(p) => p.clone(),
            None => catalog
                .create_product(CreateProductRequest {
                    request_id: String::new(),
                    product: Some(Product {
                        sku: sku.into(),
                        name: name.into(),
                        ..Default::default()
                    }),
                })
                .await?
                .into_inner()
                .product
                .context("no product returned")?,
        };
        entries.push((product.id, price));
    }
    let books = catalog
        .list_price_books(ListPriceBooksRequest {})
        .await?
        .into_inner()
        .price_books;
    let book = match books.into_iter().find(|b| b.is_default) {
        Some(b) => b,
        None => catalog
            .create_price_book(CreatePriceBookRequest {
                request_id: String::new(),
                price_book: Some(PriceBook {
                    name: "Euro list prices".into(),
                    currency: "EUR".into(),
                    is_default: true,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .price_book
            .context("no price book returned")?,
    };
    catalog
        .set_prices(SetPricesRequest {
            price_book_id: book.id.clone(),
            entries: entries
                .iter()
                .map(|(product, price)| PriceBookEntry {
                    price_book_id: book.id.clone(),
                    product_id: product.clone(),
                    list_price: euros(price),
                })
                .collect(),
        })
        .await?;

    let mut opportunities =
        OpportunityServiceClient::with_interceptor(channel.clone(), bearer.clone());
    for (i, (account, contact, name, amount)) in deals.iter().enumerate() {
        let created = opportunities
            .create_opportunity(CreateOpportunityRequest {
                opportunity: Some(Opportunity {
                    name: name.clone(),
                    account_id: account.clone(),
                    contacts: vec![ContactRole {
                        contact_id: contact.clone(),
                        role: "decision maker".into(),
                    }],
                    amount: euros(amount),
                    close_date: (chrono::Utc::now() + chrono::Duration::days(30 * (i as i64 + 1)))
                        .date_naive()
                        .to_string(),
                    stage_id: pipeline
                        .stages
                        .get(i % 3)
                        .map(|s| s.id.clone())
                        .unwrap_or_default(),
                    forecast_category: [
                        ForecastCategory::Pipeline,
                        ForecastCategory::BestCase,
                        ForecastCategory::Commit,
                    ][i % 3] as i32,
                    ..Default::default()
                }),
                request_id: format!("demo-deal-{i}"),
            })
            .await;
        match created {
            // Demo deals someone deleted or moved out of sight stay so.
            Err(status) if status.code() == tonic::Code::NotFound => {}
            other => {
                other?;
            }
        }
    }

    let mut leads = LeadServiceClient::with_interceptor(channel, bearer);
    for (first, last, company, domain, title) in [
        (
            "Grace",
            "Hopper",
            "Navy Computing",
            "navy.example",
            "VP Engineering",
        ),
        (
            "Katherine",
            "Johnson",
            "Langley Research",
            "langley.example",
            "Head of Analysis",
        ),
    ] {
        leads
            .create_lead(CreateLeadRequest {
                lead: Some(Lead {
                    first_name: first.into(),
                    last_name: last.into(),
                    email: format!("{}@{domain}", first.to_lowercase()),
                    company: company.into(),
                    company_domain: domain.into(),
                    title: title.into(),
                    source: LeadSource::WebForm as i32,
                    country: "US".into(),
                    ..Default::default()
                }),
                request_id: format!("demo-lead-{domain}"),
            })
            .await?;
    }
    Ok(())
}
