//! Campaign rules: what a valid campaign is and how its status may move.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::{Campaign, CampaignStatus, CampaignType};
use kit::error::Violations;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{optional_id, text};

/// The values of a checked campaign that are not stored as sent.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub currency: String,
    pub budget: Option<Decimal>,
    pub expected_revenue: Option<Decimal>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub owner: Option<Uuid>,
    pub team: Option<Uuid>,
    pub parent: Option<Uuid>,
}

/// Trims and checks a campaign, reporting every violated field under
/// `campaign.`; unset type and status become "other" and "planned".
pub fn normalize(c: &mut Campaign, v: &mut Violations) -> Checked {
    v.check(text("campaign.name", &mut c.name, 200));
    if c.name.is_empty() {
        v.add("campaign.name", "is required");
    }
    v.check(text("campaign.goal", &mut c.goal, 2000));
    v.check(kit::tags::normalize("campaign.tags", &mut c.tags));
    match CampaignType::try_from(c.r#type) {
        Ok(CampaignType::Unspecified) => c.r#type = CampaignType::Other as i32,
        Ok(_) => {}
        Err(_) => v.add("campaign.type", "is not a known campaign type"),
    }
    match CampaignStatus::try_from(c.status) {
        Ok(CampaignStatus::Unspecified) => c.status = CampaignStatus::Planned as i32,
        Ok(_) => {}
        Err(_) => v.add("campaign.status", "is not a known campaign status"),
    }
    let starts_at = time(v, "campaign.starts_at", c.starts_at.as_ref());
    let ends_at = time(v, "campaign.ends_at", c.ends_at.as_ref());
    if let (Some(start), Some(end)) = (starts_at, ends_at) {
        if end <= start {
            v.add("campaign.ends_at", "must be after starts_at");
        }
    }
    let mut currency = String::new();
    let mut amount = |field: &str, money: &Option<crm_proto::crm::common::v1::Money>| {
        let money = money.as_ref()?;
        let (value, code) = kit::input::money(field, &money.amount, &money.currency, v)?;
        if currency.is_empty() {
            currency = code;
        } else if currency != code {
            v.add(
                format!("{field}.currency"),
                format!("must be the campaign's currency {currency}"),
            );
        }
        Some(value)
    };
    let budget = amount("campaign.budget", &c.budget);
    let expected_revenue = amount("campaign.expected_revenue", &c.expected_revenue);
    let owner = v
        .check(optional_id("campaign.owner_id", &c.owner_id))
        .flatten();
    let team = v
        .check(optional_id("campaign.team_id", &c.team_id))
        .flatten();
    let parent = v
        .check(optional_id(
            "campaign.parent_campaign_id",
            &c.parent_campaign_id,
        ))
        .flatten();
    if parent.is_some() && parent.map(|p| p.to_string()) == Some(c.id.clone()) {
        v.add(
            "campaign.parent_campaign_id",
            "must not be the campaign itself",
        );
    }
    Checked {
        currency,
        budget,
        expected_revenue,
        starts_at,
        ends_at,
        owner,
        team,
        parent,
    }
}

fn time(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    let value = value?;
    let parsed = DateTime::from_timestamp(value.seconds, u32::try_from(value.nanos).ok()?);
    if parsed.is_none() {
        v.add(field, "is not a valid time");
    }
    parsed
}

/// Whether a campaign may move from one status to another:
/// planned -> active <-> paused -> completed, and anything still open ->
/// cancelled. Completed and cancelled are final.
pub fn can_move(from: CampaignStatus, to: CampaignStatus) -> bool {
    use CampaignStatus::*;
    if from == to {
        return true;
    }
    matches!(
        (from, to),
        (Planned, Active)
            | (Active, Paused)
            | (Paused, Active)
            | (Active | Paused, Completed)
            | (Planned | Active | Paused, Cancelled)
    )
}

/// The lower-case name of a status, for messages (`active`).
pub fn status_name(status: CampaignStatus) -> String {
    status
        .as_str_name()
        .trim_start_matches("CAMPAIGN_STATUS_")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_proto::crm::common::v1::Money;

    fn money(amount: &str, currency: &str) -> Option<Money> {
        Some(Money {
            amount: amount.into(),
            currency: currency.into(),
        })
    }

    #[test]
    fn names_every_bad_field() {
        let mut c = Campaign {
            name: "  ".into(),
            r#type: 99,
            budget: money("1e3", "EUR"),
            expected_revenue: money("10", "USD"),
            starts_at: Some(prost_types::Timestamp {
                seconds: 100,
                nanos: 0,
            }),
            ends_at: Some(prost_types::Timestamp {
                seconds: 50,
                nanos: 0,
            }),
            owner_id: "me".into(),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut c, &mut v);
        let fields = v.fields();
        for field in [
            "campaign.name",
            "campaign.type",
            "campaign.budget.amount",
            "campaign.ends_at",
            "campaign.owner_id",
        ] {
            assert!(fields.contains(&field), "{field} missing in {fields:?}");
        }
    }

    #[test]
    fn amounts_share_one_currency() {
        let mut c = Campaign {
            name: "Spring".into(),
            budget: money("1000", "EUR"),
            expected_revenue: money("5000", "USD"),
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut c, &mut v);
        assert_eq!(v.fields(), vec!["campaign.expected_revenue.currency"]);
        assert_eq!(c.status, CampaignStatus::Planned as i32);
        assert_eq!(c.r#type, CampaignType::Other as i32);
    }

    #[test]
    fn closed_campaigns_stay_closed() {
        use CampaignStatus::*;
        assert!(can_move(Planned, Active));
        assert!(can_move(Paused, Active));
        assert!(can_move(Active, Cancelled));
        assert!(!can_move(Planned, Completed));
        assert!(!can_move(Completed, Active));
        assert!(!can_move(Cancelled, Planned));
    }
}
