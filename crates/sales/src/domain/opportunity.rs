//! A valid opportunity, and line-item arithmetic in exact decimals:
//! total = quantity x unit price x (1 - discount / 100), rounded half away
//! from zero to the currency's cents.

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::{ForecastCategory, LineItem, Opportunity};
use kit::error::Violations;
use kit::input::{money, optional_date, optional_id, plain_decimal, text};
use rust_decimal::{Decimal, RoundingStrategy};

/// Amount, currency and close date of a checked opportunity.
pub struct Checked {
    pub amount: Decimal,
    pub currency: String,
    pub close_date: Option<chrono::NaiveDate>,
}

pub fn round_cents(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// An amount as `Money`, rounded to cents.
pub fn cents(value: Decimal, currency: &str) -> Option<Money> {
    Some(Money {
        amount: round_cents(value).to_string(),
        currency: currency.trim().to_owned(),
    })
}

/// Checks every line item and fills in its total; returns their sum.
pub fn price_lines(lines: &mut [LineItem], currency: &str, violations: &mut Violations) -> Decimal {
    let mut sum = Decimal::ZERO;
    for (i, line) in lines.iter_mut().enumerate() {
        let at = format!("opportunity.line_items[{i}]");
        violations.check(optional_id(&format!("{at}.product_id"), &line.product_id));
        violations.check(text(
            &format!("{at}.description"),
            &mut line.description,
            500,
        ));
        let quantity =
            plain_decimal(line.quantity.trim()).filter(|q| q.is_sign_positive() && !q.is_zero());
        if quantity.is_none() {
            violations.add(
                format!("{at}.quantity"),
                "must be a positive decimal such as 2 or 1.5",
            );
        }
        let discount = if line.discount_percent.trim().is_empty() {
            Some(Decimal::ZERO)
        } else {
            plain_decimal(line.discount_percent.trim())
                .filter(|d| !d.is_sign_negative() && *d <= Decimal::ONE_HUNDRED)
        };
        if discount.is_none() {
            violations.add(format!("{at}.discount_percent"), "must be from 0 to 100");
        }
        let price = line.unit_price.as_ref().and_then(|p| {
            let checked = money(
                &format!("{at}.unit_price"),
                &p.amount,
                &p.currency,
                violations,
            )?;
            if checked.1 != currency {
                violations.add(
                    format!("{at}.unit_price.currency"),
                    "must be the opportunity's currency",
                );
                return None;
            }
            Some(checked.0)
        });
        if line.unit_price.is_none() {
            violations.add(format!("{at}.unit_price"), "is required");
        }
        if let (Some(q), Some(d), Some(p)) = (quantity, discount, price) {
            let total = round_cents(q * p * (Decimal::ONE_HUNDRED - d) / Decimal::ONE_HUNDRED);
            line.quantity = q.normalize().to_string();
            line.discount_percent = d.normalize().to_string();
            line.total = Some(Money {
                amount: total.to_string(),
                currency: currency.to_owned(),
            });
            sum += total;
        }
    }
    sum
}

/// Normalises `opportunity` in place (`opportunity.<field>` on errors).
/// Without an amount, the line items' sum is the amount.
pub fn normalize(opportunity: &mut Opportunity, violations: &mut Violations) -> Option<Checked> {
    violations.check(text("opportunity.name", &mut opportunity.name, 200));
    if opportunity.name.is_empty() {
        violations.add("opportunity.name", "is required");
    }
    violations.check(text(
        "opportunity.next_step",
        &mut opportunity.next_step,
        500,
    ));
    for (name, value) in [
        ("account_id", &opportunity.account_id),
        ("owner_id", &opportunity.owner_id),
        ("team_id", &opportunity.team_id),
        ("campaign_id", &opportunity.campaign_id),
    ] {
        violations.check(optional_id(&format!("opportunity.{name}"), value));
    }
    for (i, role) in opportunity.contacts.iter_mut().enumerate() {
        violations.check(kit::input::required_id(
            &format!("opportunity.contacts[{i}].contact_id"),
            &role.contact_id,
        ));
        violations.check(text(
            &format!("opportunity.contacts[{i}].role"),
            &mut role.role,
            100,
        ));
    }
    for (i, competitor) in opportunity.competitors.iter_mut().enumerate() {
        violations.check(text(
            &format!("opportunity.competitors[{i}]"),
            competitor,
            200,
        ));
    }
    opportunity.competitors.retain(|c| !c.is_empty());
    if !(0..=100).contains(&opportunity.probability) {
        violations.add("opportunity.probability", "must be from 0 to 100");
    }
    match ForecastCategory::try_from(opportunity.forecast_category) {
        Ok(ForecastCategory::Unspecified) => {
            opportunity.forecast_category = ForecastCategory::Pipeline as i32
        }
        Ok(_) => {}
        Err(_) => violations.add("opportunity.forecast_category", "is not a known category"),
    }
    let close_date = violations
        .check(optional_date(
            "opportunity.close_date",
            &opportunity.close_date,
        ))
        .flatten();
    let given = opportunity.amount.clone().unwrap_or_default();
    let currency = given.currency.trim().to_ascii_uppercase();
    let currency = if currency.is_empty() {
        "EUR".to_owned()
    } else {
        currency
    };
    let lines_sum = price_lines(&mut opportunity.line_items, &currency, violations);
    let amount_text = if given.amount.trim().is_empty() {
        lines_sum.to_string()
    } else {
        given.amount.clone()
    };
    let (amount, currency) = money("opportunity.amount", &amount_text, &currency, violations)?;
    opportunity.amount = Some(Money {
        amount: amount.to_string(),
        currency: currency.clone(),
    });
    opportunity.close_date = close_date.map(|d| d.to_string()).unwrap_or_default();
    Some(Checked {
        amount,
        currency,
        close_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: &str, price: &str, discount: &str) -> LineItem {
        LineItem {
            quantity: quantity.into(),
            unit_price: Some(Money {
                amount: price.into(),
                currency: "EUR".into(),
            }),
            discount_percent: discount.into(),
            ..Default::default()
        }
    }

    #[test]
    fn totals_round_half_away_from_zero_to_cents() {
        let mut lines = vec![line("3", "19.99", "12.5"), line("1", "0.005", "")];
        let mut violations = Violations::default();
        let sum = price_lines(&mut lines, "EUR", &mut violations);
        assert!(violations.is_empty());
        // 3 x 19.99 = 59.97; x 0.875 = 52.47375 -> 52.47
        assert_eq!(lines[0].total.as_ref().unwrap().amount, "52.47");
        // 0.005 -> 0.01 (half away from zero, not to even)
        assert_eq!(lines[1].total.as_ref().unwrap().amount, "0.01");
        assert_eq!(sum.to_string(), "52.48");
    }

    #[test]
    fn bad_lines_name_their_fields() {
        let mut lines = vec![line("0", "abc", "150")];
        let mut violations = Violations::default();
        price_lines(&mut lines, "EUR", &mut violations);
        assert_eq!(
            violations.fields(),
            [
                "opportunity.line_items[0].quantity",
                "opportunity.line_items[0].discount_percent",
                "opportunity.line_items[0].unit_price.amount"
            ]
        );
    }
}
