//! Report schedules without I/O: checking one, and when it next runs.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use crm_proto::crm::reporting::v1::{Frequency, ReportSchedule};
use kit::error::Violations;

/// Most addresses one schedule mails.
pub const MAX_RECIPIENTS: usize = 20;

/// A checked schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub frequency: Frequency,
    pub hour: u32,
    /// Weekday 1-7 (weekly) or day of month 1-28 (monthly); 0 daily.
    pub day: u32,
    pub recipients: Vec<String>,
}

/// Checks `s` under `path` (`report.schedule`).
pub fn check(s: &ReportSchedule, path: &str, v: &mut Violations) -> Option<Schedule> {
    let frequency = match Frequency::try_from(s.frequency) {
        Ok(Frequency::Unspecified) | Err(_) => {
            v.add(
                format!("{path}.frequency"),
                "must be daily, weekly or monthly",
            );
            return None;
        }
        Ok(f) => f,
    };
    if !(0..=23).contains(&s.hour) {
        v.add(format!("{path}.hour"), "must be 0 to 23 (UTC)");
    }
    let day = match frequency {
        Frequency::Weekly if !(1..=7).contains(&s.day) => {
            v.add(format!("{path}.day"), "must be a weekday, 1 (Monday) to 7");
            0
        }
        Frequency::Monthly if !(1..=28).contains(&s.day) => {
            v.add(format!("{path}.day"), "must be a day of the month, 1 to 28");
            0
        }
        Frequency::Daily => 0,
        _ => s.day as u32,
    };
    if s.recipients.is_empty() || s.recipients.len() > MAX_RECIPIENTS {
        v.add(
            format!("{path}.recipients"),
            "one to twenty e-mail addresses",
        );
    }
    let mut recipients: Vec<String> = Vec::new();
    for (i, address) in s.recipients.iter().enumerate() {
        let address = address.trim().to_ascii_lowercase();
        if address.len() > 254 || address.parse::<lettre::Address>().is_err() {
            v.add(
                format!("{path}.recipients[{i}]"),
                "is not an e-mail address",
            );
        } else if !recipients.contains(&address) {
            recipients.push(address);
        }
    }
    Some(Schedule {
        frequency,
        hour: s.hour.clamp(0, 23) as u32,
        day,
        recipients,
    })
}

/// The first run strictly after `after`.
pub fn next_run(s: &Schedule, after: DateTime<Utc>) -> DateTime<Utc> {
    let at = |date: NaiveDate| -> DateTime<Utc> {
        Utc.from_utc_datetime(&date.and_hms_opt(s.hour, 0, 0).unwrap_or_default())
    };
    let today = after.date_naive();
    match s.frequency {
        Frequency::Weekly => {
            let weekday = today.weekday().number_from_monday();
            let ahead = (i64::from(s.day) - i64::from(weekday)).rem_euclid(7);
            let candidate = at(today + Duration::days(ahead));
            if candidate > after {
                candidate
            } else {
                candidate + Duration::days(7)
            }
        }
        Frequency::Monthly => {
            let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), s.day.max(1))
                .map(at)
                .filter(|candidate| *candidate > after);
            this_month.unwrap_or_else(|| {
                let (year, month) = if today.month() == 12 {
                    (today.year() + 1, 1)
                } else {
                    (today.year(), today.month() + 1)
                };
                NaiveDate::from_ymd_opt(year, month, s.day.max(1))
                    .map(at)
                    .unwrap_or(after + Duration::days(30))
            })
        }
        _ => {
            let candidate = at(today);
            if candidate > after {
                candidate
            } else {
                candidate + Duration::days(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn schedule(frequency: Frequency, hour: u32, day: u32) -> Schedule {
        Schedule {
            frequency,
            hour,
            day,
            recipients: vec!["a@example.com".into()],
        }
    }

    #[test]
    fn runs_come_daily_weekly_and_monthly_at_the_hour() {
        // 2026-12-01 is a Tuesday.
        let now = at("2026-12-01T10:30:00Z");
        let daily = schedule(Frequency::Daily, 7, 0);
        assert_eq!(next_run(&daily, now), at("2026-12-02T07:00:00Z"));
        let later_today = schedule(Frequency::Daily, 11, 0);
        assert_eq!(next_run(&later_today, now), at("2026-12-01T11:00:00Z"));
        let monday = schedule(Frequency::Weekly, 7, 1);
        assert_eq!(next_run(&monday, now), at("2026-12-07T07:00:00Z"));
        let tuesday_early = schedule(Frequency::Weekly, 7, 2);
        assert_eq!(next_run(&tuesday_early, now), at("2026-12-08T07:00:00Z"));
        let first = schedule(Frequency::Monthly, 6, 1);
        assert_eq!(next_run(&first, now), at("2027-01-01T06:00:00Z"));
        let fifteenth = schedule(Frequency::Monthly, 6, 15);
        assert_eq!(next_run(&fifteenth, now), at("2026-12-15T06:00:00Z"));
        // A run exactly at its time is followed by the next one.
        assert_eq!(
            next_run(&daily, at("2026-12-02T07:00:00Z")),
            at("2026-12-03T07:00:00Z")
        );
    }

    #[test]
    fn schedules_are_checked_by_field() {
        let mut v = Violations::new();
        let bad = ReportSchedule {
            frequency: Frequency::Weekly as i32,
            hour: 24,
            day: 9,
            recipients: vec!["ana@example.com".into(), "not an address".into()],
            next_run_at: None,
        };
        check(&bad, "report.schedule", &mut v);
        assert_eq!(
            v.fields(),
            [
                "report.schedule.hour",
                "report.schedule.day",
                "report.schedule.recipients[1]"
            ]
        );
    }
}
