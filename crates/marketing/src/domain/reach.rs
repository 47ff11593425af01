//! Whether a message may reach a contact on a channel: the one rule every
//! send applies, and the reachability RPC shows.

use crm_proto::crm::customers::v1::ConsentStatus;
use crm_proto::crm::marketing::v1::SkipReason;

/// One address of the contact on the channel, primary first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub address: &'a str,
    pub suppressed: bool,
}

/// The address to send to, or why none: consent first (none or pending is
/// no consent), then the first address that is not suppressed.
pub fn decide<'a>(
    consent: Option<ConsentStatus>,
    candidates: &[Candidate<'a>],
) -> Result<&'a str, SkipReason> {
    match consent {
        Some(ConsentStatus::Granted) => {}
        Some(ConsentStatus::Withdrawn) => return Err(SkipReason::ConsentWithdrawn),
        _ => return Err(SkipReason::NoConsent),
    }
    if candidates.is_empty() {
        return Err(SkipReason::NoAddress);
    }
    candidates
        .iter()
        .find(|c| !c.suppressed)
        .map(|c| c.address)
        .ok_or(SkipReason::Suppressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(address: &str, suppressed: bool) -> Candidate<'_> {
        Candidate {
            address,
            suppressed,
        }
    }

    #[test]
    fn consent_comes_before_addresses() {
        let both = [candidate("a@x.io", true), candidate("b@x.io", false)];
        assert_eq!(decide(Some(ConsentStatus::Granted), &both), Ok("b@x.io"));
        assert_eq!(
            decide(Some(ConsentStatus::Withdrawn), &both),
            Err(SkipReason::ConsentWithdrawn)
        );
        assert_eq!(
            decide(Some(ConsentStatus::Pending), &both),
            Err(SkipReason::NoConsent)
        );
        assert_eq!(decide(None, &both), Err(SkipReason::NoConsent));
        assert_eq!(
            decide(Some(ConsentStatus::Granted), &[candidate("a@x.io", true)]),
            Err(SkipReason::Suppressed)
        );
        assert_eq!(
            decide(Some(ConsentStatus::Granted), &[]),
            Err(SkipReason::NoAddress)
        );
    }
}
