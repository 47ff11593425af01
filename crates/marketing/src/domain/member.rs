//! How a campaign member moves: forward along the funnel only, and
//! unsubscribed or bounced end the membership's progress.

use crm_proto::crm::marketing::v1::MemberStatus;

/// Place along the funnel; the two endings rank above every step.
fn rank(status: MemberStatus) -> u8 {
    use MemberStatus::*;
    match status {
        Unspecified => 0,
        Targeted => 1,
        Sent => 2,
        Opened => 3,
        Clicked => 4,
        Responded => 5,
        Converted => 6,
        Unsubscribed | Bounced => 7,
    }
}

/// The status after `next` happened to a member at `current`: an earlier
/// step (an open after a click) keeps the current one; after an ending
/// nothing moves.
pub fn advance(current: MemberStatus, next: MemberStatus) -> MemberStatus {
    if rank(next) > rank(current) {
        next
    } else {
        current
    }
}

/// The column holding when `status` was first reached.
pub fn reached_column(status: MemberStatus) -> Option<&'static str> {
    use MemberStatus::*;
    Some(match status {
        Sent => "sent_at",
        Opened => "opened_at",
        Clicked => "clicked_at",
        Responded => "responded_at",
        Converted => "converted_at",
        Unsubscribed => "unsubscribed_at",
        Bounced => "bounced_at",
        Targeted | Unspecified => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberStatus::*;

    #[test]
    fn members_only_move_forward() {
        assert_eq!(advance(Targeted, Sent), Sent);
        assert_eq!(advance(Clicked, Opened), Clicked);
        assert_eq!(advance(Opened, Converted), Converted);
        assert_eq!(advance(Bounced, Clicked), Bounced);
        assert_eq!(advance(Clicked, Unsubscribed), Unsubscribed);
        assert_eq!(advance(Unsubscribed, Bounced), Unsubscribed);
    }
}
