-- The report builder: contacts as a dataset (ids, lifecycle, country and
-- times only; an erased person's row is deleted), saved reports and
-- report dashboards (the only tables reporting's own API writes).

CREATE TABLE contacts (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    account_id      uuid,
    owner_id        uuid,
    team_id         uuid,
    lifecycle_stage smallint NOT NULL DEFAULT 0,
    country         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('contacts');

-- A saved report: its definition as the proto's JSON, who owns it and who
-- it is shared with (1 private, 2 team, 3 tenant).
CREATE TABLE reports (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    definition  bytea NOT NULL,
    sharing     smallint NOT NULL,
    owner_id    uuid,
    team_id     uuid,
    chart       text NOT NULL DEFAULT 'bar',
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX reports_owner ON reports (tenant_id, owner_id);
SELECT crm_enable_tenant_rls('reports');

CREATE TABLE report_dashboards (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    report_ids uuid[] NOT NULL,
    sharing    smallint NOT NULL,
    owner_id   uuid,
    team_id    uuid,
    version    bigint NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('report_dashboards');

-- Idempotent creates (kit::idempotency): a retried create with the same
-- request id returns the record the first call made.
CREATE TABLE create_requests (
    tenant_id   uuid NOT NULL,
    entity      text NOT NULL,
    request_id  text NOT NULL,
    record_id   uuid NOT NULL,
    fingerprint bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, request_id)
);
SELECT crm_enable_tenant_rls('create_requests');
