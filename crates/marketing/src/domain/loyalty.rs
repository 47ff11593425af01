//! Loyalty rules without I/O: valid programs and coupons, the points an
//! amount earns, and the tier lifetime points reach.

use std::collections::HashSet;

use crm_proto::crm::marketing::v1::{Coupon, EarnEvent, EarnRule, LoyaltyProgram, Tier};
use kit::error::Violations;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::text;

/// The most points one award, redemption or event may move.
pub const MAX_POINTS: i64 = 1_000_000;

/// Trims and checks a program, reporting under `program.`.
pub fn check_program(p: &mut LoyaltyProgram, v: &mut Violations) {
    v.check(text("program.name", &mut p.name, 200));
    if p.name.is_empty() {
        v.add("program.name", "is required");
    }
    p.currency = p.currency.trim().to_ascii_uppercase();
    if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_uppercase()) {
        v.add("program.currency", "must be an ISO 4217 code such as EUR");
    }
    let mut events = HashSet::new();
    for (i, rule) in p.earn_rules.iter_mut().enumerate() {
        let at = format!("program.earn_rules[{i}]");
        match EarnEvent::try_from(rule.event) {
            Ok(EarnEvent::Unspecified) | Err(_) => {
                v.add(format!("{at}.event"), "must name an event")
            }
            Ok(event) => {
                if !events.insert(event) {
                    v.add(format!("{at}.event"), "has another rule");
                }
            }
        }
        if rule.points_per_unit.trim().is_empty() {
            rule.points_per_unit = "0".into();
        }
        match kit::input::plain_decimal(rule.points_per_unit.trim()) {
            Some(rate) if rate >= Decimal::ZERO && rate <= Decimal::from(MAX_POINTS) => {
                rule.points_per_unit = rate.normalize().to_string();
            }
            _ => v.add(
                format!("{at}.points_per_unit"),
                "must be a plain decimal from 0 to 1000000",
            ),
        }
        if !(0..=MAX_POINTS).contains(&rule.fixed_points) {
            v.add(format!("{at}.fixed_points"), "must be from 0 to 1000000");
        }
    }
    let mut names = HashSet::new();
    let mut last: Option<i64> = None;
    for (i, tier) in p.tiers.iter_mut().enumerate() {
        let at = format!("program.tiers[{i}]");
        v.check(text(&format!("{at}.name"), &mut tier.name, 100));
        if tier.name.is_empty() {
            v.add(format!("{at}.name"), "is required");
        } else if !names.insert(tier.name.to_lowercase()) {
            v.add(format!("{at}.name"), "is used by another tier");
        }
        if tier.threshold < 0 || last.is_some_and(|last| tier.threshold <= last) {
            v.add(
                format!("{at}.threshold"),
                "must be at least 0 and above the previous tier's",
            );
        }
        last = Some(tier.threshold);
    }
    if !(0..=3650).contains(&p.points_valid_days) {
        v.add("program.points_valid_days", "must be from 0 to 3650");
    }
}

/// The points an event earns under its rule: whole units of the amount
/// (when in the program's currency) times the rate, rounded down, plus the
/// fixed points; capped at [`MAX_POINTS`].
pub fn earned(rule: &EarnRule, amount: Option<(Decimal, &str)>, currency: &str) -> i64 {
    let rate = kit::input::plain_decimal(&rule.points_per_unit).unwrap_or_default();
    let by_amount = match amount {
        Some((amount, code)) if code == currency && amount > Decimal::ZERO => (amount.trunc()
            * rate)
            .floor()
            .to_i64()
            .unwrap_or(MAX_POINTS),
        _ => 0,
    };
    by_amount
        .saturating_add(rule.fixed_points)
        .clamp(0, MAX_POINTS)
}

/// The highest tier lifetime points reach; empty below every threshold.
pub fn tier_for(tiers: &[Tier], lifetime: i64) -> String {
    tiers
        .iter()
        .rev()
        .find(|t| lifetime >= t.threshold)
        .map(|t| t.name.clone())
        .unwrap_or_default()
}

/// Points as a request gives them: 1 to [`MAX_POINTS`].
pub fn check_points(points: i64, v: &mut Violations) {
    if !(1..=MAX_POINTS).contains(&points) {
        v.add("points", "must be from 1 to 1000000");
    }
}

/// A coupon code as stored: trimmed, upper case.
pub fn normalize_code(code: &str) -> String {
    code.trim().to_ascii_uppercase()
}

/// The checked discount of a coupon.
pub struct Discount {
    pub percent: Option<Decimal>,
    pub amount: Option<(Decimal, String)>,
}

/// Trims and checks a coupon, reporting under `coupon.`.
pub fn check_coupon(c: &mut Coupon, v: &mut Violations) -> Discount {
    c.code = normalize_code(&c.code);
    let code_ok = (3..=40).contains(&c.code.len())
        && c.code
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
    if !code_ok {
        v.add(
            "coupon.code",
            "must be 3 to 40 letters, digits, dashes or underscores",
        );
    }
    let mut discount = Discount {
        percent: None,
        amount: None,
    };
    match (c.percent_off.trim().is_empty(), &c.amount_off) {
        (false, None) => match kit::input::plain_decimal(c.percent_off.trim()) {
            Some(p) if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => {
                c.percent_off = p.normalize().to_string();
                discount.percent = Some(p);
            }
            _ => v.add(
                "coupon.percent_off",
                "must be a plain decimal above 0 and at most 100",
            ),
        },
        (true, Some(money)) => {
            if let Some((amount, currency)) =
                kit::input::money("coupon.amount_off", &money.amount, &money.currency, v)
            {
                if amount <= Decimal::ZERO {
                    v.add("coupon.amount_off.amount", "must be above 0");
                }
                discount.amount = Some((amount, currency));
            }
        }
        _ => v.add(
            "coupon.percent_off",
            "exactly one of percent_off and amount_off is required",
        ),
    }
    if c.max_redemptions < 0 {
        v.add("coupon.max_redemptions", "must not be negative");
    }
    discount
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(rate: &str, fixed: i64) -> EarnRule {
        EarnRule {
            event: EarnEvent::OrderCreated as i32,
            points_per_unit: rate.into(),
            fixed_points: fixed,
        }
    }

    #[test]
    fn whole_units_in_the_currency_earn_rounded_down() {
        let amount = Decimal::new(56514, 2); // 565.14
        assert_eq!(earned(&rule("1", 0), Some((amount, "EUR")), "EUR"), 565);
        assert_eq!(earned(&rule("0.5", 10), Some((amount, "EUR")), "EUR"), 292);
        assert_eq!(earned(&rule("1", 10), Some((amount, "USD")), "EUR"), 10);
        assert_eq!(
            earned(&rule("1000000", 0), Some((amount, "EUR")), "EUR"),
            MAX_POINTS
        );
    }

    #[test]
    fn tiers_rise_with_lifetime_points() {
        let tiers = [
            Tier {
                name: "Silver".into(),
                threshold: 100,
            },
            Tier {
                name: "Gold".into(),
                threshold: 1000,
            },
        ];
        assert_eq!(tier_for(&tiers, 99), "");
        assert_eq!(tier_for(&tiers, 100), "Silver");
        assert_eq!(tier_for(&tiers, 5000), "Gold");
        let mut bad = LoyaltyProgram {
            name: "Club".into(),
            currency: "eur".into(),
            tiers: vec![tiers[1].clone(), tiers[0].clone()],
            earn_rules: vec![rule("-1", 0), rule("1", 0)],
            ..Default::default()
        };
        let mut v = Violations::new();
        check_program(&mut bad, &mut v);
        let fields: Vec<String> = match v.into_result() {
            Err(kit::Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            fields,
            [
                "program.earn_rules[0].points_per_unit",
                "program.earn_rules[1].event",
                "program.tiers[1].threshold"
            ]
        );
        assert_eq!(bad.currency, "EUR");
    }
}
