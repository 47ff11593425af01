-- Tables of the kit's own tests: a tenant table to test row-level security,
-- and what the test consumer applied (no unique key, so a double apply
-- would show up as a second row).
CREATE TABLE notes (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL,
    body      text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('notes');

CREATE TABLE applied_events (
    applied_seq       bigserial PRIMARY KEY,
    tenant_id         uuid NOT NULL,
    event_id          uuid NOT NULL,
    aggregate_id      uuid NOT NULL,
    aggregate_version bigint NOT NULL
);
SELECT crm_enable_tenant_rls('applied_events');
