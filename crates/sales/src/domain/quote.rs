//! Quote arithmetic in exact decimals. Per line: net = quantity x unit
//! price x (1 - discount / 100) and tax = net x tax / 100, each rounded to
//! cents half away from zero; the quote's totals are the sums of the
//! rounded line figures, so lines always add up to the total shown.

use crm_proto::crm::common::v1::Money;
use crm_proto::crm::sales::v1::QuoteLine;
use kit::error::Violations;
use kit::input::plain_decimal;
use rust_decimal::Decimal;

use super::opportunity::round_cents;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub subtotal: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    /// Highest effective line discount against the list price, percent.
    pub max_discount: Decimal,
}

fn percent(raw: &str, field: String, violations: &mut Violations) -> Option<Decimal> {
    if raw.trim().is_empty() {
        return Some(Decimal::ZERO);
    }
    let value =
        plain_decimal(raw.trim()).filter(|d| !d.is_sign_negative() && *d <= Decimal::ONE_HUNDRED);
    if value.is_none() {
        violations.add(field, "must be a percentage from 0 to 100");
    }
    value
}

fn cash(value: Decimal, currency: &str) -> Option<Money> {
    Some(Money {
        amount: value.to_string(),
        currency: currency.to_owned(),
    })
}

/// Checks and prices every line (unit prices and tax rates must already be
/// filled in, in `currency`); fills in net, tax and total, and returns the
/// sums. `list_prices[i]` is line i's list price, against which its
/// effective discount is measured (the line's own discount when none).
pub fn price(
    lines: &mut [QuoteLine],
    list_prices: &[Option<Decimal>],
    currency: &str,
    violations: &mut Violations,
) -> Totals {
    let mut totals = Totals::default();
    for (i, line) in lines.iter_mut().enumerate() {
        let at = format!("quote.lines[{i}]");
        let quantity =
            plain_decimal(line.quantity.trim()).filter(|q| q.is_sign_positive() && !q.is_zero());
        if quantity.is_none() {
            violations.add(
                format!("{at}.quantity"),
                "must be a positive decimal such as 2 or 1.5",
            );
        }
        let discount = percent(
            &line.discount_percent,
            format!("{at}.discount_percent"),
            violations,
        );
        let tax = percent(&line.tax_percent, format!("{at}.tax_percent"), violations);
        let unit = line.unit_price.as_ref().and_then(|p| {
            let mut local = Violations::new();
            let checked = kit::input::money(
                &format!("{at}.unit_price"),
                &p.amount,
                &p.currency,
                &mut local,
            );
            if !local.is_empty() {
                for field in local.fields() {
                    violations.add(
                        field,
                        "must be a non-negative plain decimal in a valid currency",
                    );
                }
                return None;
            }
            match checked {
                Some((amount, c)) if c == currency => Some(amount),
                _ => {
                    violations.add(
                        format!("{at}.unit_price.currency"),
                        format!("must be the price book's currency {currency}"),
                    );
                    None
                }
            }
        });
        let (Some(q), Some(d), Some(t), Some(p)) = (quantity, discount, tax, unit) else {
            continue;
        };
        let gross = round_cents(q * p);
        let net = round_cents(q * p * (Decimal::ONE_HUNDRED - d) / Decimal::ONE_HUNDRED);
        let line_tax = round_cents(net * t / Decimal::ONE_HUNDRED);
        line.quantity = q.normalize().to_string();
        line.discount_percent = d.normalize().to_string();
        line.tax_percent = t.normalize().to_string();
        line.unit_price = cash(p.normalize(), currency);
        line.net = cash(net, currency);
        line.tax = cash(line_tax, currency);
        line.total = cash(net + line_tax, currency);
        totals.subtotal += gross;
        totals.discount += gross - net;
        totals.tax += line_tax;
        totals.total += net + line_tax;
        let effective = match list_prices.get(i).copied().flatten() {
            Some(list) if list > Decimal::ZERO => {
                let full = q * list;
                ((full - q * p * (Decimal::ONE_HUNDRED - d) / Decimal::ONE_HUNDRED) / full
                    * Decimal::ONE_HUNDRED)
                    .max(Decimal::ZERO)
            }
            _ => d,
        };
        totals.max_discount = totals.max_discount.max(effective.round_dp(4).normalize());
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: &str, price: &str, discount: &str, tax: &str) -> QuoteLine {
        QuoteLine {
            quantity: quantity.into(),
            unit_price: cash(price.parse().unwrap(), "EUR"),
            discount_percent: discount.into(),
            tax_percent: tax.into(),
            ..Default::default()
        }
    }

    #[test]
    fn lines_round_to_cents_and_add_up() {
        let mut lines = vec![line("3", "33.335", "10", "19"), line("7", "0.99", "", "7")];
        let mut violations = Violations::new();
        let totals = price(&mut lines, &[], "EUR", &mut violations);
        assert!(violations.is_empty(), "{violations:?}");
        // 3 x 33.335 = 100.005 -> gross 100.01; net 90.0045 -> 90.00; tax 17.10
        assert_eq!(lines[0].net.as_ref().unwrap().amount, "90.00");
        assert_eq!(lines[0].tax.as_ref().unwrap().amount, "17.10");
        // 7 x 0.99 = 6.93; tax 0.4851 -> 0.49
        assert_eq!(lines[1].total.as_ref().unwrap().amount, "7.42");
        assert_eq!(totals.subtotal.to_string(), "106.94");
        assert_eq!(totals.discount.to_string(), "10.01");
        assert_eq!(totals.tax.to_string(), "17.59");
        assert_eq!(totals.total.to_string(), "114.52");
        assert_eq!(totals.max_discount.to_string(), "10");
    }

    #[test]
    fn a_lowered_price_is_a_discount_against_the_list_price() {
        let list = Some(Decimal::ONE_HUNDRED);
        let mut lines = vec![line("2", "0.01", "0", "0"), line("1", "90", "10", "0")];
        let totals = price(&mut lines, &[list, list], "EUR", &mut Violations::new());
        assert_eq!(totals.max_discount.to_string(), "99.99");
        let mut lines = vec![line("1", "90", "10", "0")];
        let totals = price(&mut lines, &[list], "EUR", &mut Violations::new());
        assert_eq!(
            totals.max_discount.to_string(),
            "19",
            "90 less 10% is 81 of 100"
        );
        let mut lines = vec![line("1", "120", "5", "0")];
        let totals = price(&mut lines, &[list], "EUR", &mut Violations::new());
        assert_eq!(
            totals.max_discount.to_string(),
            "0",
            "above list price is no discount"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let mut lines = vec![line("x", "1", "101", "-1")];
        let mut violations = Violations::new();
        price(&mut lines, &[], "EUR", &mut violations);
        assert_eq!(
            violations.fields(),
            [
                "quote.lines[0].quantity",
                "quote.lines[0].discount_percent",
                "quote.lines[0].tax_percent"
            ]
        );
    }
}
