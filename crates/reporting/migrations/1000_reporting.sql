-- Read models of the reporting service, projected from the other
-- services' events; nothing here is written by an API call. Every table is
-- under row-level security like the sources'.

-- The service desk's tickets, from crm.servicedesk.* events. The assignee
-- and group are kept as owner_id and team_id, the columns record
-- visibility (kit::access::Scope) filters on, as in the service desk.
CREATE TABLE tickets (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    number            bigint NOT NULL DEFAULT 0,
    type              smallint NOT NULL DEFAULT 0,
    channel           smallint NOT NULL DEFAULT 0,
    priority          smallint NOT NULL DEFAULT 0,
    status            smallint NOT NULL DEFAULT 0,
    owner_id          uuid,
    team_id           uuid,
    account_id        uuid,
    created_at        timestamptz NOT NULL,
    first_response_at timestamptz,
    solved_at         timestamptz,
    csat_score        smallint,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tickets_created ON tickets (tenant_id, created_at);
-- Neither solved (6) nor closed (7): the backlog.
CREATE INDEX tickets_open ON tickets (tenant_id, created_at) WHERE status NOT IN (6, 7);
CREATE INDEX tickets_solved ON tickets (tenant_id, solved_at) WHERE solved_at IS NOT NULL;
SELECT crm_enable_tenant_rls('tickets');

-- How fresh a tenant's figures are: the time of the latest event applied
-- from each domain ("as of" on every answer).
CREATE TABLE freshness (
    tenant_id uuid NOT NULL,
    domain    text NOT NULL,
    as_of     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, domain)
);
SELECT crm_enable_tenant_rls('freshness');
