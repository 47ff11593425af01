//! Satisfaction surveys: the signed link a requester answers through, and
//! what a valid answer is.

use kit::error::Violations;
use kit::input::text;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a survey link works.
pub const LIFETIME: chrono::Duration = chrono::Duration::days(30);

/// Longest comment kept.
pub const MAX_COMMENT: usize = 2_000;

/// What a survey link carries: the ticket it asks about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Survey {
    #[serde(rename = "t")]
    pub tenant: Uuid,
    #[serde(rename = "k")]
    pub ticket: Uuid,
    #[serde(rename = "e")]
    pub expires: i64,
}

impl kit::links::SignedLink for Survey {
    fn tenant(&self) -> Uuid {
        self.tenant
    }

    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Checks an answer: a score of 1-5 and a comment of at most
/// [`MAX_COMMENT`] characters (trimmed, no control characters but line
/// breaks).
pub fn check_answer(score: i32, comment: &mut String, v: &mut Violations) {
    if !(1..=5).contains(&score) {
        v.add("score", "must be 1 to 5");
    }
    *comment = comment.replace("\r\n", "\n");
    v.check(text("comment", comment, MAX_COMMENT));
}

/// How long an NPS link works.
pub const NPS_LIFETIME: chrono::Duration = chrono::Duration::days(60);

/// What an NPS link carries: the survey and the contact it asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpsLink {
    #[serde(rename = "t")]
    pub tenant: Uuid,
    #[serde(rename = "s")]
    pub survey: Uuid,
    #[serde(rename = "c")]
    pub contact: Uuid,
    #[serde(rename = "e")]
    pub expires: i64,
}

impl kit::links::SignedLink for NpsLink {
    fn tenant(&self) -> Uuid {
        self.tenant
    }

    fn expires(&self) -> i64 {
        self.expires
    }
}

/// Contacts one NPS survey asks at most.
pub const MAX_NPS_CONTACTS: usize = 500;

/// Checks an NPS answer: 0-10 and a comment like a CSAT one.
pub fn check_nps_answer(score: i32, comment: &mut String, v: &mut Violations) {
    if !(0..=10).contains(&score) {
        v.add("score", "must be 0 to 10");
    }
    *comment = comment.replace("\r\n", "\n");
    v.check(text("comment", comment, MAX_COMMENT));
}

/// Which group an NPS score puts its giver in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpsGroup {
    Detractor,
    Passive,
    Promoter,
}

pub fn nps_group(score: i32) -> NpsGroup {
    match score {
        9.. => NpsGroup::Promoter,
        7 | 8 => NpsGroup::Passive,
        _ => NpsGroup::Detractor,
    }
}

/// The Net Promoter Score of counts: promoters minus detractors as a
/// share of all answers, rounded, -100 to 100; 0 without answers.
pub fn nps_score(promoters: i64, detractors: i64, responses: i64) -> i32 {
    if responses <= 0 {
        return 0;
    }
    let share = (promoters - detractors) as f64 * 100.0 / responses as f64;
    share.round() as i32
}

/// The NPS mail: one link per score.
pub fn nps_text(sender: &str, url: &str) -> String {
    let mut text = format!(
        "How likely are you to recommend {sender} to a friend or colleague?\n\n\
         Answer from 0 (not at all likely) to 10 (extremely likely):\n"
    );
    for score in 0..=10 {
        text.push_str(&format!("  {score}: {url}?score={score}\n"));
    }
    text.push_str("\nThe link works for 60 days.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit::links::LinkKey;

    #[test]
    fn nps_counts_promoters_against_detractors() {
        let groups: Vec<NpsGroup> = [0, 6, 7, 8, 9, 10].into_iter().map(nps_group).collect();
        assert_eq!(
            groups,
            [
                NpsGroup::Detractor,
                NpsGroup::Detractor,
                NpsGroup::Passive,
                NpsGroup::Passive,
                NpsGroup::Promoter,
                NpsGroup::Promoter
            ]
        );
        assert_eq!(nps_score(2, 2, 6), 0);
        assert_eq!(nps_score(2, 1, 3), 33);
        assert_eq!(nps_score(0, 3, 3), -100);
        assert_eq!(nps_score(0, 0, 0), 0);
        let mut v = Violations::new();
        check_nps_answer(11, &mut String::new(), &mut v);
        check_nps_answer(0, &mut String::new(), &mut v);
        assert_eq!(v.fields(), ["score"]);
    }

    #[test]
    fn answers_are_checked_and_links_bound_to_their_ticket() {
        let mut v = Violations::new();
        let mut comment = "Quick and kind.".to_owned();
        check_answer(5, &mut comment, &mut v);
        assert!(v.is_empty());
        let mut long = "x".repeat(MAX_COMMENT + 1);
        check_answer(0, &mut long, &mut v);
        assert_eq!(v.fields(), ["score", "comment"]);

        let key = LinkKey::random();
        let survey = Survey {
            tenant: Uuid::now_v7(),
            ticket: Uuid::now_v7(),
            expires: 100,
        };
        let token = key.sign(&survey);
        assert_eq!(key.verify::<Survey>(&token, 100), Some(survey));
        assert_eq!(key.verify::<Survey>(&token, 101), None, "expired");
        assert_eq!(LinkKey::random().verify::<Survey>(&token, 0), None);
    }
}
