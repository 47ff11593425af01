//! What reporting concludes about an account, without I/O: its RFM
//! segment, its churn risk and its credit grade, each with the reasons a
//! person can check.

use rust_decimal::Decimal;

/// The RFM segment of scores 1-5 for recency (5: ordered most recently)
/// and frequency (5: orders most often), on the usual recency x frequency
/// grid; monetary value ranks customers within a segment.
pub fn segment(recency: i32, frequency: i32) -> &'static str {
    match (recency, frequency) {
        (5, 4..=5) => "champions",
        (3..=4, 4..=5) => "loyal",
        (4..=5, 2..=3) => "potential_loyalists",
        (5, _) => "new_customers",
        (4, _) => "promising",
        (3, 3) => "need_attention",
        (3, _) => "about_to_sleep",
        (1..=2, 5) => "cannot_lose_them",
        (1..=2, 3..=4) => "at_risk",
        _ => "hibernating",
    }
}

/// Every segment, in the order dashboards list them.
pub const SEGMENTS: [&str; 10] = [
    "champions",
    "loyal",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cannot_lose_them",
    "at_risk",
    "hibernating",
];

/// Days without an order after which a customer is at risk.
pub const QUIET_DAYS: i64 = 90;

/// What the churn risk is computed from, as of now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChurnFacts {
    /// Days since the account's latest order; none without orders (not a
    /// customer: no churn risk is computed).
    pub days_since_order: Option<i64>,
    /// Activities about the account in the last 30 days, and the 30 before.
    pub recent_activities: i64,
    pub earlier_activities: i64,
    pub open_complaints: i64,
    /// Average satisfaction (1-5) of its tickets solved in the last 90
    /// days that were rated; none without answers.
    pub csat: Option<Decimal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChurnLevel {
    Low = 1,
    Medium = 2,
    High = 3,
}

impl ChurnLevel {
    pub fn from_score(score: i32) -> Self {
        match score {
            60.. => ChurnLevel::High,
            40.. => ChurnLevel::Medium,
            _ => ChurnLevel::Low,
        }
    }

    pub fn from_i16(level: i16) -> Option<Self> {
        match level {
            1 => Some(ChurnLevel::Low),
            2 => Some(ChurnLevel::Medium),
            3 => Some(ChurnLevel::High),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChurnLevel::Low => "low",
            ChurnLevel::Medium => "medium",
            ChurnLevel::High => "high",
        }
    }
}

/// A churn risk: 0-100, its level and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChurnRisk {
    pub score: i32,
    pub level: ChurnLevel,
    pub reasons: Vec<String>,
}

/// No order in [`QUIET_DAYS`] (40), activity halved month over month
/// (20), open complaints (20), satisfaction below 3 (20).
pub fn churn(f: &ChurnFacts) -> ChurnRisk {
    let mut score = 0;
    let mut reasons = Vec::new();
    match f.days_since_order {
        Some(days) if days > QUIET_DAYS => {
            score += 40;
            reasons.push(format!("no order in {days} days"));
        }
        _ => {}
    }
    if f.earlier_activities >= 2 && f.recent_activities * 2 < f.earlier_activities {
        score += 20;
        reasons.push(format!(
            "activity fell from {} to {} in the last 30 days",
            f.earlier_activities, f.recent_activities
        ));
    }
    if f.open_complaints > 0 {
        score += 20;
        reasons.push(match f.open_complaints {
            1 => "1 open complaint".to_owned(),
            n => format!("{n} open complaints"),
        });
    }
    if let Some(csat) = f.csat.filter(|c| *c < Decimal::from(3)) {
        score += 20;
        reasons.push(format!(
            "satisfaction {} of 5",
            csat.round_dp(1).normalize()
        ));
    }
    ChurnRisk {
        score,
        level: ChurnLevel::from_score(score),
        reasons,
    }
}

/// What the credit grade is computed from: the account's invoices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreditFacts {
    pub invoices: i64,
    /// Invoices paid in full, those of them paid after their due date, and
    /// the average days from issue to full payment.
    pub paid: i64,
    pub paid_late: i64,
    pub average_days_to_pay: Option<Decimal>,
    /// Invoices past their due date and not paid in full: how many, what is
    /// left to pay on them, and the days the oldest is overdue.
    pub overdue: i64,
    pub overdue_amount: Decimal,
    pub oldest_overdue_days: i64,
}

/// A grade, A (pays on time) to D (long overdue), or `unrated` without
/// invoices, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditGrade {
    pub grade: &'static str,
    pub reasons: Vec<String>,
}

/// Days to pay beyond which an account that pays on time is a B.
pub const SLOW_PAYMENT_DAYS: i64 = 30;

pub fn credit(f: &CreditFacts) -> CreditGrade {
    if f.invoices == 0 {
        return CreditGrade {
            grade: "unrated",
            reasons: vec!["no invoices yet".to_owned()],
        };
    }
    let mut reasons = Vec::new();
    if f.overdue > 0 {
        reasons.push(format!(
            "{} overdue invoice{} ({} open), the oldest {} days overdue",
            f.overdue,
            if f.overdue == 1 { "" } else { "s" },
            super::money(f.overdue_amount),
            f.oldest_overdue_days
        ));
    }
    if f.paid_late > 0 {
        reasons.push(format!("{} of {} invoices paid late", f.paid_late, f.paid));
    }
    let slow = f
        .average_days_to_pay
        .filter(|d| *d > Decimal::from(SLOW_PAYMENT_DAYS));
    if let Some(days) = slow {
        reasons.push(format!(
            "pays in {} days on average",
            days.round_dp(1).normalize()
        ));
    }
    let late_share = |over: i64| f.paid > 0 && f.paid_late * over > f.paid;
    let grade = if f.overdue > 0 && f.oldest_overdue_days > 60 {
        "D"
    } else if f.overdue > 0 || late_share(2) {
        "C"
    } else if f.paid_late > 0 || slow.is_some() {
        "B"
    } else {
        "A"
    };
    if grade == "A" {
        reasons.push(format!("{} invoices paid on time", f.paid));
    }
    CreditGrade { grade, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_grid() {
        assert_eq!(segment(5, 5), "champions");
        assert_eq!(segment(4, 4), "loyal");
        assert_eq!(segment(5, 2), "potential_loyalists");
        assert_eq!(segment(5, 1), "new_customers");
        assert_eq!(segment(4, 1), "promising");
        assert_eq!(segment(3, 3), "need_attention");
        assert_eq!(segment(3, 1), "about_to_sleep");
        assert_eq!(segment(1, 5), "cannot_lose_them");
        assert_eq!(segment(2, 3), "at_risk");
        assert_eq!(segment(1, 1), "hibernating");
        for r in 1..=5 {
            for f in 1..=5 {
                assert!(SEGMENTS.contains(&segment(r, f)));
            }
        }
    }

    #[test]
    fn churn_adds_up_its_reasons() {
        let quiet = ChurnFacts {
            days_since_order: Some(120),
            recent_activities: 1,
            earlier_activities: 4,
            open_complaints: 2,
            csat: Some(Decimal::new(25, 1)),
        };
        let risk = churn(&quiet);
        assert_eq!((risk.score, risk.level), (100, ChurnLevel::High));
        assert_eq!(
            risk.reasons,
            [
                "no order in 120 days",
                "activity fell from 4 to 1 in the last 30 days",
                "2 open complaints",
                "satisfaction 2.5 of 5"
            ]
        );
        let fine = ChurnFacts {
            days_since_order: Some(10),
            recent_activities: 2,
            earlier_activities: 4,
            csat: Some(Decimal::from(3)),
            ..Default::default()
        };
        assert_eq!(churn(&fine).score, 0, "half the activity is not a fall");
        let quiet_only = churn(&ChurnFacts {
            days_since_order: Some(91),
            ..Default::default()
        });
        assert_eq!(
            (quiet_only.score, quiet_only.level),
            (40, ChurnLevel::Medium)
        );
    }

    #[test]
    fn credit_grades_from_payment_behaviour() {
        let none = credit(&CreditFacts::default());
        assert_eq!(none.grade, "unrated");
        let punctual = CreditFacts {
            invoices: 3,
            paid: 3,
            average_days_to_pay: Some(Decimal::from(14)),
            ..Default::default()
        };
        assert_eq!(credit(&punctual).grade, "A");
        let slow = CreditFacts {
            paid_late: 1,
            average_days_to_pay: Some(Decimal::new(355, 1)),
            ..punctual.clone()
        };
        let graded = credit(&slow);
        assert_eq!(graded.grade, "B");
        assert_eq!(
            graded.reasons,
            ["1 of 3 invoices paid late", "pays in 35.5 days on average"]
        );
        let mostly_late = CreditFacts {
            paid_late: 2,
            ..punctual.clone()
        };
        assert_eq!(credit(&mostly_late).grade, "C");
        let overdue = CreditFacts {
            invoices: 4,
            overdue: 1,
            overdue_amount: Decimal::new(12050, 2),
            oldest_overdue_days: 75,
            ..punctual
        };
        let graded = credit(&overdue);
        assert_eq!(graded.grade, "D");
        assert_eq!(
            graded.reasons,
            ["1 overdue invoice (120.50 open), the oldest 75 days overdue"]
        );
    }
}
