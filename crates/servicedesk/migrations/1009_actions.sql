-- Macros (canned responses with field changes) and bulk jobs over many
-- tickets, each kept with who asked, what and every ticket's outcome.

CREATE TABLE macros (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    reply      text NOT NULL DEFAULT '',
    changes    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX macros_name ON macros (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('macros');

CREATE TABLE ticket_jobs (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    actor       text NOT NULL,
    ticket_ids  uuid[] NOT NULL,
    changes     jsonb NOT NULL,
    succeeded   integer NOT NULL DEFAULT 0,
    failed      integer NOT NULL DEFAULT 0,
    results     jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('ticket_jobs');
