-- Root causes of complaints and feedback: a tenant's list; tickets name
-- one (a complaint must be solved with one).

CREATE TABLE root_causes (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT '',
    version     bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX root_causes_name ON root_causes (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('root_causes');

-- A root cause tickets name is not deleted (RESTRICT).
ALTER TABLE tickets ADD COLUMN root_cause_id uuid;
ALTER TABLE tickets ADD CONSTRAINT tickets_root_cause
    FOREIGN KEY (tenant_id, root_cause_id) REFERENCES root_causes (tenant_id, id) ON DELETE RESTRICT;
CREATE INDEX tickets_root_cause ON tickets (tenant_id, root_cause_id) WHERE root_cause_id IS NOT NULL;
