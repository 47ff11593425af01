-- Idempotency-Key now travels to the owning service as its request_id
-- (ADR 0011): one mechanism, in the service. The gateway's own table goes.
DROP TABLE IF EXISTS idempotency_keys;
