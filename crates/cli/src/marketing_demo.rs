//! Demo marketing data for the demo tenant: an active newsletter campaign
//! with a budget, one booked cost and the demo contacts as members; the
//! first contact of each account agreed to e-mail. Safe to run again: the
//! campaign and the cost carry request ids, members already in stay.

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::customers::v1::contact_service_client::ContactServiceClient;
use crm_proto::crm::customers::v1::{Channel as Medium, ConsentStatus, UpdateConsentRequest};
use crm_proto::crm::marketing::v1::campaign_service_client::CampaignServiceClient;
use crm_proto::crm::marketing::v1::*;
use kit::auth::BearerToken;
use tonic::transport::Channel;

fn euros(amount: &str) -> Option<Money> {
    Some(Money {
        amount: amount.into(),
        currency: "EUR".into(),
    })
}

/// `contacts`: the demo contacts' ids; `consenting` those who agreed to e-mail.
pub async fn seed(
    marketing: Channel,
    customers: Channel,
    bearer: BearerToken,
    contacts: &[String],
    consenting: &[String],
) -> anyhow::Result<()> {
    let mut people = ContactServiceClient::with_interceptor(customers, bearer.clone());
    for contact in consenting {
        people
            .update_consent(UpdateConsentRequest {
                contact_id: contact.clone(),
                channel: Medium::Email as i32,
                status: ConsentStatus::Granted as i32,
                source: "demo".into(),
            })
            .await?;
    }
    let mut campaigns = CampaignServiceClient::with_interceptor(marketing, bearer);
    let campaign = campaigns
        .create_campaign(CreateCampaignRequest {
            campaign: Some(Campaign {
                name: "Autumn newsletter".into(),
                r#type: CampaignType::Email as i32,
                budget: euros("5000"),
                expected_revenue: euros("40000"),
                goal: "Book 10 demos".into(),
                tags: vec!["demo".into()],
                ..Default::default()
            }),
            request_id: "demo-campaign-newsletter".into(),
        })
        .await?
        .into_inner()
        .campaign
        .ok_or_else(|| anyhow::anyhow!("no campaign returned"))?;
    if campaign.status == CampaignStatus::Planned as i32 {
        campaigns
            .update_campaign(UpdateCampaignRequest {
                campaign: Some(Campaign {
                    id: campaign.id.clone(),
                    status: CampaignStatus::Active as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["status".into()],
                }),
                expected_version: 0,
            })
            .await?;
    }
    campaigns
        .add_campaign_cost(AddCampaignCostRequest {
            cost: Some(CostEntry {
                campaign_id: campaign.id.clone(),
                amount: euros("750"),
                description: "Design and copywriting".into(),
                ..Default::default()
            }),
            request_id: "demo-cost-design".into(),
        })
        .await?;
    campaigns
        .add_campaign_members(AddCampaignMembersRequest {
            campaign_id: campaign.id,
            contact_ids: contacts.to_vec(),
            ..Default::default()
        })
        .await?;
    Ok(())
}
