//! The services' one idempotency mechanism (AIP-155): a create-like RPC
//! takes a `request_id`; the service records which record the first call
//! made, with a fingerprint of the request, in the same transaction. A retry
//! with the same id and the same request gets that record back; the same id
//! with another request is refused, so a reused key never hides a different
//! write. The gateway passes `Idempotency-Key` through as `request_id`.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::Error;

/// SHA-256 of the encoded request. Callers pass it with `request_id`
/// cleared, so the fingerprint is that of what was asked, not of the key.
pub fn fingerprint(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// Whether a stored fingerprint allows a replay: rows made before
/// fingerprints were kept have none and replay as before.
pub fn check(request_id: &str, stored: Option<&[u8]>, fingerprint: &[u8]) -> crate::Result<()> {
    match stored {
        Some(stored) if stored != fingerprint => Err(Error::AlreadyExists(format!(
            "request_id {request_id:?} was used for a different request; use a new one"
        ))),
        _ => Ok(()),
    }
}
