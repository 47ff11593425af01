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

#[cfg(test)]
mod tests {
    use super::*;
    use kit::links::LinkKey;

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
