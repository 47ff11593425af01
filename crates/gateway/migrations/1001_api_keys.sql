-- API keys for integrations: shown once, stored as SHA-256 hashes, scoped,
-- revocable. The key text carries its tenant, so lookups stay tenant-scoped.
CREATE TABLE api_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    id           uuid NOT NULL,
    name         text NOT NULL,
    key_hash     bytea NOT NULL,
    scopes       text[] NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, key_hash)
);
SELECT crm_enable_tenant_rls('api_keys');
