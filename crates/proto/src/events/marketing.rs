//! Events of `crm.marketing.v1`, published on `crm.marketing.<entity>.<verb>`.

use super::domain_events;
use crate::crm::marketing::v1 as pb;

domain_events!("crm.marketing.v1", pb, {
    CampaignCreated => "crm.marketing.campaign.created.v1",
    CampaignUpdated => "crm.marketing.campaign.updated.v1",
    CampaignStatusChanged => "crm.marketing.campaign.status_changed.v1",
    CampaignCostAdded => "crm.marketing.campaign.cost_added.v1",
    CampaignMembersAdded => "crm.marketing.campaign.members_added.v1",
    MemberStatusChanged => "crm.marketing.member.status_changed.v1",
    MemberRemoved => "crm.marketing.member.removed.v1",
    MessageSent => "crm.marketing.message.sent.v1",
    SendCompleted => "crm.marketing.send.completed.v1",
    MessageOpened => "crm.marketing.message.opened.v1",
    MessageClicked => "crm.marketing.message.clicked.v1",
    MessageUnsubscribed => "crm.marketing.message.unsubscribed.v1",
    MessageDelivered => "crm.marketing.message.delivered.v1",
    MessageBounced => "crm.marketing.message.bounced.v1",
    AttributionComputed => "crm.marketing.attribution.computed.v1",
    FormSubmitted => "crm.marketing.form.submitted.v1",
    LoyaltyPointsEarned => "crm.marketing.loyalty.points_earned.v1",
    LoyaltyPointsRedeemed => "crm.marketing.loyalty.points_redeemed.v1",
    LoyaltyPointsExpired => "crm.marketing.loyalty.points_expired.v1",
    LoyaltyTierChanged => "crm.marketing.loyalty.tier_changed.v1",
    CouponRedeemed => "crm.marketing.coupon.redeemed.v1",
    JourneyEnrolled => "crm.marketing.journey.enrolled.v1",
    JourneyCompleted => "crm.marketing.journey.completed.v1",
});
