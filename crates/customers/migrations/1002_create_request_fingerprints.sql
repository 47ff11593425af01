-- A retried create must be the same request: keep a fingerprint of it
-- (kit::idempotency) beside the record it made.
ALTER TABLE create_requests ADD COLUMN fingerprint bytea;
