-- Idempotent creates (kit::idempotency): a retried create with the same
-- request id returns the record the first call made; the same id with a
-- different request is refused.
CREATE TABLE create_requests (
    tenant_id   uuid NOT NULL,
    entity      text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea,
    record_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, request_id)
);
SELECT crm_enable_tenant_rls('create_requests');
