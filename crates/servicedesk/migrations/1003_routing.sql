-- Routing by skill and workload: agents, each group's assignment mode,
-- and the skills a ticket needs.

-- {"language:de": 2, ...}: skill -> least level.
ALTER TABLE tickets ADD COLUMN required_skills jsonb NOT NULL DEFAULT '{}';
-- The queue: open tickets of a group that nobody holds, most urgent first.
CREATE INDEX tickets_waiting ON tickets (tenant_id, team_id, priority DESC, id)
    WHERE owner_id IS NULL AND status NOT IN (6, 7);

CREATE TABLE agents (
    tenant_id        uuid NOT NULL,
    user_id          uuid NOT NULL,
    skills           jsonb NOT NULL DEFAULT '{}',
    group_ids        uuid[] NOT NULL DEFAULT '{}',
    capacity         integer NOT NULL CHECK (capacity > 0),
    calendar_id      uuid,
    availability     smallint NOT NULL DEFAULT 3,
    -- Open tickets assigned to the agent, kept in step by every change of
    -- a ticket's assignee or status (under the agent's row lock).
    open_tickets     integer NOT NULL DEFAULT 0,
    last_assigned_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL DEFAULT '',
    version          bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, calendar_id) REFERENCES business_calendars (tenant_id, id)
);
CREATE INDEX agents_groups ON agents USING gin (group_ids);
SELECT crm_enable_tenant_rls('agents');

CREATE TABLE group_routing (
    tenant_id             uuid NOT NULL,
    group_id              uuid NOT NULL,
    mode                  smallint NOT NULL,
    reassign_when_offline boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text NOT NULL DEFAULT '',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    updated_by            text NOT NULL DEFAULT '',
    version               bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, group_id)
);
SELECT crm_enable_tenant_rls('group_routing');
