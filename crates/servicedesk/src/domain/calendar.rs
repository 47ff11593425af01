//! Business hours: which instants an SLA clock counts. A calendar is a
//! time zone, weekly working intervals and days off; [`Hours::Always`] is
//! around the clock. Both answer the two questions SLA clocks ask: how
//! many business seconds lie between two instants, and when a number of
//! business seconds from an instant is used up.

use std::collections::BTreeSet;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use crm_proto::crm::servicedesk::v1::{BusinessCalendar, Weekday, WorkingHours};
use kit::error::Violations;

use super::text;

pub const MAX_NAME: usize = 200;
pub const MAX_INTERVALS: usize = 50;
pub const MAX_HOLIDAYS: usize = 1_000;
/// How far ahead a deadline is looked for: a calendar whose working time
/// runs out within this many days (all days off) gives no deadline.
const HORIZON_DAYS: i64 = 3_700;
const DAY: u32 = 86_400;

/// When clocks run.
#[derive(Debug, Clone)]
pub enum Hours {
    Always,
    Calendar(Calendar),
}

/// A checked calendar: per weekday (Monday first) its intervals in
/// seconds from local midnight, sorted and apart.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: Tz,
    week: [Vec<(u32, u32)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// "09:30" -> seconds from midnight; "24:00" is the end of the day.
fn clock_time(raw: &str) -> Option<u32> {
    if raw == "24:00" {
        return Some(DAY);
    }
    let time = NaiveTime::parse_from_str(raw, "%H:%M").ok()?;
    Some(chrono::Timelike::num_seconds_from_midnight(&time))
}

/// Trims, checks and sorts a calendar, reporting under `calendar.`.
pub fn normalize(c: &mut BusinessCalendar, v: &mut Violations) {
    v.check(text("calendar.name", &mut c.name, MAX_NAME));
    if c.name.is_empty() {
        v.add("calendar.name", "is required");
    }
    c.time_zone = c.time_zone.trim().to_owned();
    if Tz::from_str(&c.time_zone).is_err() {
        v.add(
            "calendar.time_zone",
            "is not an IANA time zone (e.g. Europe/Berlin)",
        );
    }
    if c.hours.is_empty() {
        v.add("calendar.hours", "needs at least one working interval");
    }
    if c.hours.len() > MAX_INTERVALS {
        v.add(
            "calendar.hours",
            format!("at most {MAX_INTERVALS} intervals"),
        );
    }
    let mut week: [Vec<(u32, u32, usize)>; 7] = Default::default();
    for (i, h) in c.hours.iter_mut().enumerate() {
        let field = format!("calendar.hours[{i}]");
        h.start = h.start.trim().to_owned();
        h.end = h.end.trim().to_owned();
        let day = match Weekday::try_from(h.weekday) {
            Ok(Weekday::Unspecified) | Err(_) => {
                v.add(format!("{field}.weekday"), "is not a weekday");
                None
            }
            Ok(day) => Some(day as usize - 1),
        };
        let start = clock_time(&h.start).filter(|s| *s < DAY);
        let end = clock_time(&h.end);
        if start.is_none() {
            v.add(format!("{field}.start"), "is not a time HH:MM");
        }
        if end.is_none() {
            v.add(format!("{field}.end"), "is not a time HH:MM (or 24:00)");
        }
        if let (Some(day), Some(start), Some(end)) = (day, start, end) {
            if end <= start {
                v.add(format!("{field}.end"), "is not after start");
            } else {
                week[day].push((start, end, i));
            }
        }
    }
    for day in &mut week {
        day.sort();
        for pair in day.windows(2) {
            if pair[1].0 < pair[0].1 {
                v.add(
                    format!("calendar.hours[{}]", pair[1].2),
                    "overlaps another interval of the same day",
                );
            }
        }
    }
    c.hours.sort_by_key(|h| (h.weekday, clock_time(&h.start)));
    if c.holidays.len() > MAX_HOLIDAYS {
        v.add("calendar.holidays", format!("at most {MAX_HOLIDAYS} days"));
    }
    for (i, day) in c.holidays.iter_mut().enumerate() {
        *day = day.trim().to_owned();
        if NaiveDate::parse_from_str(day, "%Y-%m-%d").is_err() {
            v.add(
                format!("calendar.holidays[{i}]"),
                "is not a date YYYY-MM-DD",
            );
        }
    }
    c.holidays.sort();
    c.holidays.dedup();
}

impl Calendar {
    /// A calendar [`normalize`] accepted; `None` if it would not have.
    pub fn new(zone: &str, hours: &[WorkingHours], holidays: &[String]) -> Option<Self> {
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        for h in hours {
            let day = match Weekday::try_from(h.weekday).ok()? {
                Weekday::Unspecified => return None,
                day => day as usize - 1,
            };
            week[day].push((clock_time(&h.start)?, clock_time(&h.end)?));
        }
        for day in &mut week {
            day.sort();
        }
        Some(Calendar {
            zone: Tz::from_str(zone).ok()?,
            week,
            holidays: holidays
                .iter()
                .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .collect(),
        })
    }

    /// A local time as UTC; in a daylight-saving gap, the first instant
    /// after it.
    fn utc(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        loop {
            if let Some(at) = self.zone.from_local_datetime(&probe).earliest() {
                return at.with_timezone(&Utc);
            }
            probe += Duration::minutes(15);
        }
    }

    /// Working intervals in UTC that end after `from`, clipped to start no
    /// earlier than it, in order, for [`HORIZON_DAYS`].
    fn intervals_from(
        &self,
        from: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        let first_day = from.with_timezone(&self.zone).date_naive() - Duration::days(1);
        (0..HORIZON_DAYS)
            .map(move |offset| first_day + Duration::days(offset))
            .filter(|day| !self.holidays.contains(day))
            .flat_map(move |day| {
                let midnight = day.and_time(NaiveTime::MIN);
                self.week[day.weekday().num_days_from_monday() as usize]
                    .iter()
                    .map(move |&(start, end)| {
                        (
                            self.utc(midnight + Duration::seconds(start.into())),
                            self.utc(midnight + Duration::seconds(end.into())),
                        )
                    })
            })
            .filter(move |(_, end)| *end > from)
            .map(move |(start, end)| (start.max(from), end))
    }
}

impl Hours {
    /// Business seconds in `[from, to)`; 0 when `to` is not after `from`.
    pub fn seconds_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        if to <= from {
            return 0;
        }
        match self {
            Hours::Always => (to - from).num_seconds(),
            Hours::Calendar(calendar) => calendar
                .intervals_from(from)
                .take_while(|(start, _)| *start < to)
                .map(|(start, end)| (end.min(to) - start).num_seconds())
                .sum(),
        }
    }

    /// Whether `at` falls in working time.
    pub fn is_working(&self, at: DateTime<Utc>) -> bool {
        self.seconds_between(at, at + Duration::seconds(1)) == 1
    }

    /// The instant at which `seconds` business seconds from `from` are
    /// used up; `None` if the calendar has no working time left in reach.
    pub fn add(&self, from: DateTime<Utc>, seconds: i64) -> Option<DateTime<Utc>> {
        if seconds <= 0 {
            return Some(from);
        }
        match self {
            Hours::Always => Some(from + Duration::seconds(seconds)),
            Hours::Calendar(calendar) => {
                let mut left = seconds;
                for (start, end) in calendar.intervals_from(from) {
                    let length = (end - start).num_seconds();
                    if left <= length {
                        return Some(start + Duration::seconds(left));
                    }
                    left -= length;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(day: Weekday, start: &str, end: &str) -> WorkingHours {
        WorkingHours {
            weekday: day as i32,
            start: start.into(),
            end: end.into(),
        }
    }

    fn weekdays_9_to_5(zone: &str, holidays: &[&str]) -> Hours {
        let week: Vec<WorkingHours> = [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .map(|d| hours(d, "09:00", "17:00"))
        .collect();
        let holidays: Vec<String> = holidays.iter().map(|d| d.to_string()).collect();
        Hours::Calendar(Calendar::new(zone, &week, &holidays).expect("calendar"))
    }

    fn utc(raw: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(raw)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_friday_afternoon_target_lands_on_monday() {
        // 2026-12-04 is a Friday; Berlin is UTC+1 in winter.
        let berlin = weekdays_9_to_5("Europe/Berlin", &[]);
        let friday_4pm = utc("2026-12-04T15:00:00Z");
        let due = berlin.add(friday_4pm, 2 * 3600).unwrap();
        assert_eq!(due, utc("2026-12-07T09:00:00Z")); // Monday 10:00 local
        assert_eq!(berlin.seconds_between(friday_4pm, due), 2 * 3600);
        // Nothing counts over the weekend.
        assert_eq!(
            berlin.seconds_between(utc("2026-12-05T08:00:00Z"), utc("2026-12-06T20:00:00Z")),
            0
        );
    }

    #[test]
    fn holidays_and_lunch_breaks_are_skipped() {
        let week = vec![
            hours(Weekday::Monday, "09:00", "12:00"),
            hours(Weekday::Monday, "13:00", "17:00"),
            hours(Weekday::Tuesday, "09:00", "17:00"),
        ];
        let cal = Hours::Calendar(Calendar::new("UTC", &week, &[]).unwrap());
        // Monday 2026-12-07 11:00 + 2h = 14:00 (lunch skipped).
        assert_eq!(
            cal.add(utc("2026-12-07T11:00:00Z"), 7200).unwrap(),
            utc("2026-12-07T14:00:00Z")
        );
        let off = Hours::Calendar(Calendar::new("UTC", &week, &["2026-12-08".to_owned()]).unwrap());
        // Tuesday is a holiday: Monday 16:00 + 2h runs into next Monday.
        assert_eq!(
            off.add(utc("2026-12-07T16:00:00Z"), 7200).unwrap(),
            utc("2026-12-14T10:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_changes_keep_local_hours() {
        // New York: 2026-03-08 clocks go forward; 9:00 local is 14:00 UTC
        // before and 13:00 UTC after.
        let ny = weekdays_9_to_5("America/New_York", &[]);
        let friday_close = utc("2026-03-06T22:00:00Z"); // 17:00 EST
        assert_eq!(
            ny.add(friday_close, 3600).unwrap(),
            utc("2026-03-09T14:00:00Z") // Monday 10:00 EDT
        );
    }

    #[test]
    fn around_the_clock_is_plain_time_and_a_calendar_of_holidays_gives_up() {
        let start = utc("2026-12-01T00:00:00Z");
        assert_eq!(
            Hours::Always.add(start, 90).unwrap(),
            utc("2026-12-01T00:01:30Z")
        );
        let week = vec![hours(Weekday::Monday, "00:00", "24:00")];
        let cal = Hours::Calendar(Calendar::new("UTC", &week, &[]).unwrap());
        assert_eq!(
            cal.seconds_between(utc("2026-12-07T00:00:00Z"), utc("2026-12-08T06:00:00Z")),
            86_400
        );
        let no_time = Hours::Calendar(Calendar::new("UTC", &[], &[]).unwrap());
        assert_eq!(no_time.add(start, 60), None);
    }

    #[test]
    fn bad_calendars_name_their_fields() {
        let mut c = BusinessCalendar {
            name: "Support".into(),
            time_zone: "Mars/Olympus".into(),
            hours: vec![
                hours(Weekday::Monday, "09:00", "12:00"),
                hours(Weekday::Monday, "11:00", "13:00"),
                hours(Weekday::Unspecified, "9", "08:00"),
                hours(Weekday::Tuesday, "10:00", "09:00"),
            ],
            holidays: vec!["2026-13-01".into()],
            ..Default::default()
        };
        let mut v = Violations::new();
        normalize(&mut c, &mut v);
        let fields: Vec<String> = v.fields().into_iter().map(str::to_owned).collect();
        assert_eq!(
            fields,
            vec![
                "calendar.time_zone",
                "calendar.hours[2].weekday",
                "calendar.hours[2].start",
                "calendar.hours[3].end",
                "calendar.hours[1]",
                "calendar.holidays[0]",
            ]
        );
    }
}
