//! Rules of the reporting service, without I/O: who may read dashboards,
//! what a period is, and how dimension values are named.

pub mod access;
pub mod chart;
pub mod insights;
pub mod report;
pub mod schedule;

use chrono::{DateTime, Duration, Utc};
use kit::error::Violations;
use rust_decimal::Decimal;

/// The period most dashboards cover when the caller names none.
pub const DEFAULT_PERIOD: Duration = Duration::days(30);
/// The longest period one answer covers.
pub const MAX_PERIOD: Duration = Duration::days(5 * 366);

/// A dashboard's period, [from, to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The period asked for: both ends, one end (the other `default` away) or
/// neither (the last `default` up to `now`).
pub fn period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    default: Duration,
    v: &mut Violations,
) -> Period {
    let (from, to) = match (from, to) {
        (Some(from), Some(to)) => (from, to),
        (Some(from), None) => (from, from + default),
        (None, Some(to)) => (to - default, to),
        (None, None) => (now - default, now),
    };
    if from >= to {
        v.add("to", "must be after from");
    } else if to - from > MAX_PERIOD {
        v.add("to", "a period is at most five years");
    }
    Period { from, to }
}

/// A source enum's value as a dimension key: its name without the type's
/// prefix, in lower case (`TICKET_CHANNEL_WEB_FORM` -> `web_form`);
/// `unspecified` for a value the source has not named yet.
pub fn key_of(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_ascii_lowercase())
        .unwrap_or_else(|| "unspecified".into())
}

/// `part / whole` in percent with one decimal; empty when `whole` is zero.
pub fn percent(part: Decimal, whole: Decimal) -> String {
    if whole.is_zero() {
        return String::new();
    }
    (part * Decimal::ONE_HUNDRED / whole)
        .round_dp(1)
        .normalize()
        .to_string()
}

/// A count as [`percent`] takes it.
pub fn share(part: i64, whole: i64) -> String {
    percent(Decimal::from(part), Decimal::from(whole))
}

/// An amount as answered: exact, two decimals.
pub fn money(amount: Decimal) -> String {
    let mut exact = amount.round_dp(2);
    exact.rescale(2);
    exact.to_string()
}

/// Backlog ages, as counted: a ticket open for less than the first bound
/// is in the first bucket, and so on; past the last bound, the last name.
pub const AGE_BUCKETS: [(&str, i64); 4] = [
    ("under 1 day", 1),
    ("1-3 days", 3),
    ("3-7 days", 7),
    ("over 7 days", i64::MAX),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_default_to_the_last_thirty_days_and_are_checked() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("a time");
        let mut v = Violations::new();
        let p = period(None, None, now, DEFAULT_PERIOD, &mut v);
        assert_eq!((p.to, p.to - p.from), (now, DEFAULT_PERIOD));
        let p = period(Some(now), None, now, DEFAULT_PERIOD, &mut v);
        assert_eq!(p.to, now + DEFAULT_PERIOD);
        assert!(v.is_empty());
        period(Some(now), Some(now), now, DEFAULT_PERIOD, &mut v);
        period(
            Some(now - Duration::days(3000)),
            Some(now),
            now,
            DEFAULT_PERIOD,
            &mut v,
        );
        assert_eq!(v.fields(), ["to", "to"]);
    }

    #[test]
    fn the_backlog_leaves_out_the_sources_solved_and_closed_statuses() {
        use crm_proto::crm::servicedesk::v1::TicketStatus;
        // store::tickets counts `status NOT IN (6, 7)` as open, and
        // store::accounts `type = 4` as a complaint.
        assert_eq!(
            (TicketStatus::Solved as i32, TicketStatus::Closed as i32),
            (6, 7)
        );
        use crm_proto::crm::servicedesk::v1::TicketType;
        assert_eq!(TicketType::Complaint as i32, 4);
    }

    #[test]
    fn shares_are_percent_with_one_decimal_and_empty_without_a_whole() {
        assert_eq!(share(1, 3), "33.3");
        assert_eq!(share(2, 3), "66.7");
        assert_eq!(share(3, 3), "100");
        assert_eq!(share(0, 0), "");
        assert_eq!(money(Decimal::new(15, 1)), "1.50");
    }

    #[test]
    fn enum_names_become_keys() {
        assert_eq!(
            key_of(Some("TICKET_CHANNEL_WEB_FORM"), "TICKET_CHANNEL_"),
            "web_form"
        );
        assert_eq!(key_of(None, "TICKET_CHANNEL_"), "unspecified");
    }
}
