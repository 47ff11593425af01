//! Sharing a won deal's revenue among the campaigns that touched it.

use chrono::{DateTime, Utc};
use crm_proto::crm::marketing::v1::AttributionModel;
use rust_decimal::{Decimal, RoundingStrategy};
use uuid::Uuid;

/// A campaign engaging one of the deal's contacts at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub campaign: Uuid,
    pub at: DateTime<Utc>,
}

/// Every model's shares of `amount`: (model, campaign, share). With no
/// touch, the deal's own campaign (if any) gets it all under every model.
/// Linear shares are rounded to cents and the rounding left over goes to
/// the first campaign, so each model's shares add up to `amount` exactly.
pub fn shares(
    amount: Decimal,
    touches: &[Touch],
    own_campaign: Option<Uuid>,
) -> Vec<(AttributionModel, Uuid, Decimal)> {
    let mut ordered = touches.to_vec();
    ordered.sort_by_key(|t| (t.at, t.campaign));
    let mut campaigns: Vec<Uuid> = Vec::new();
    for touch in &ordered {
        if !campaigns.contains(&touch.campaign) {
            campaigns.push(touch.campaign);
        }
    }
    let (first, last) = match (ordered.first(), ordered.last()) {
        (Some(first), Some(last)) => (first.campaign, last.campaign),
        _ => match own_campaign {
            Some(own) => {
                return [
                    AttributionModel::FirstTouch,
                    AttributionModel::LastTouch,
                    AttributionModel::Linear,
                ]
                .into_iter()
                .map(|model| (model, own, amount))
                .collect()
            }
            None => return Vec::new(),
        },
    };
    let mut out = vec![
        (AttributionModel::FirstTouch, first, amount),
        (AttributionModel::LastTouch, last, amount),
    ];
    let count = Decimal::from(campaigns.len() as u64);
    let each = (amount / count).round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let left_over = amount - each * count;
    for (i, campaign) in campaigns.iter().enumerate() {
        let share = if i == 0 { each + left_over } else { each };
        out.push((AttributionModel::Linear, *campaign, share));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minutes * 60, 0).expect("a time")
    }

    #[test]
    fn each_model_shares_the_whole_amount() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let touches = [
            Touch {
                campaign: b,
                at: at(5),
            },
            Touch {
                campaign: a,
                at: at(1),
            },
            Touch {
                campaign: c,
                at: at(9),
            },
            Touch {
                campaign: a,
                at: at(7),
            },
        ];
        let amount: Decimal = "100.00".parse().expect("decimal");
        let out = shares(amount, &touches, None);
        let of = |model| -> Vec<(Uuid, Decimal)> {
            out.iter()
                .filter(|(m, _, _)| *m == model)
                .map(|(_, c, d)| (*c, *d))
                .collect()
        };
        assert_eq!(of(AttributionModel::FirstTouch), vec![(a, amount)]);
        assert_eq!(of(AttributionModel::LastTouch), vec![(c, amount)]);
        let linear = of(AttributionModel::Linear);
        assert_eq!(
            linear,
            vec![
                (a, "33.34".parse().expect("d")),
                (b, "33.33".parse().expect("d")),
                (c, "33.33".parse().expect("d"))
            ]
        );
        assert_eq!(linear.iter().map(|(_, d)| *d).sum::<Decimal>(), amount);
    }

    #[test]
    fn without_touches_the_deal_campaign_gets_it_all() {
        let own = Uuid::now_v7();
        let amount: Decimal = "10".parse().expect("decimal");
        assert_eq!(shares(amount, &[], Some(own)).len(), 3);
        assert!(shares(amount, &[], None).is_empty());
    }
}
