-- Rollups of tickets for the service dashboard, kept by triggers on
-- `tickets` as 1007 keeps those of deals: counts per UTC day and the
-- visibility columns, read for a period's whole days beside the rows of
-- its partial days. Medians are not sums: they are read from the rows.

-- The ticket breached an SLA target (its solving counts against
-- compliance), kept on the ticket so that its rollups can be keyed by it.
ALTER TABLE tickets ADD COLUMN breached boolean NOT NULL DEFAULT false;

-- Tickets per UTC day of creation, channel and type.
CREATE TABLE ticket_created_days (
    tenant_id uuid NOT NULL,
    day       date NOT NULL,
    owner_id  uuid,
    team_id   uuid,
    channel   smallint NOT NULL,
    type      smallint NOT NULL,
    tickets   bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, owner_id, team_id, channel, type)
);
SELECT crm_enable_tenant_rls('ticket_created_days');

-- Tickets per UTC day of solving: whether they breached, and their
-- satisfaction answers (count and sum of scores).
CREATE TABLE ticket_solved_days (
    tenant_id      uuid NOT NULL,
    day            date NOT NULL,
    owner_id       uuid,
    team_id        uuid,
    breached       boolean NOT NULL,
    tickets        bigint NOT NULL,
    csat_responses bigint NOT NULL,
    csat_sum       bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, owner_id, team_id, breached)
);
SELECT crm_enable_tenant_rls('ticket_solved_days');

-- Open tickets (neither solved nor closed) per UTC day of creation: the
-- backlog and its age.
CREATE TABLE ticket_open_days (
    tenant_id uuid NOT NULL,
    day       date NOT NULL,
    owner_id  uuid,
    team_id   uuid,
    tickets   bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, owner_id, team_id)
);
SELECT crm_enable_tenant_rls('ticket_open_days');

-- As deal_rollups_apply (1007), for tickets.
CREATE FUNCTION ticket_rollups_apply(removed tickets[], added tickets[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS MATERIALIZED (
        SELECT r.*, -1 AS sign FROM unnest(removed) r
        UNION ALL
        SELECT a.*, 1 AS sign FROM unnest(added) a
    ), created AS (
        INSERT INTO ticket_created_days AS t
        SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, owner_id, team_id, channel, type, sum(sign)
        FROM changed
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (tenant_id, day, owner_id, team_id, channel, type) DO UPDATE SET tickets = t.tickets + EXCLUDED.tickets
    ), solved AS (
        INSERT INTO ticket_solved_days AS t
        SELECT tenant_id, (solved_at AT TIME ZONE 'UTC')::date, owner_id, team_id, breached, sum(sign),
               coalesce(sum(sign) FILTER (WHERE csat_score IS NOT NULL), 0), coalesce(sum(sign * csat_score), 0)
        FROM changed WHERE solved_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(sign) <> 0 OR coalesce(sum(sign) FILTER (WHERE csat_score IS NOT NULL), 0) <> 0
            OR coalesce(sum(sign * csat_score), 0) <> 0
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (tenant_id, day, owner_id, team_id, breached) DO UPDATE
        SET tickets = t.tickets + EXCLUDED.tickets, csat_responses = t.csat_responses + EXCLUDED.csat_responses,
            csat_sum = t.csat_sum + EXCLUDED.csat_sum
    )
    INSERT INTO ticket_open_days AS t
    SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, owner_id, team_id, sum(sign)
    FROM changed WHERE status NOT IN (6, 7)
    GROUP BY 1, 2, 3, 4
    HAVING sum(sign) <> 0
    ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, day, owner_id, team_id) DO UPDATE SET tickets = t.tickets + EXCLUDED.tickets;
END $$;

SELECT crm_keep_rollups('tickets', 'ticket_rollups_apply');

CREATE FUNCTION ticket_rollups_rebuild(tenant uuid) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM ticket_created_days WHERE tenant_id = tenant;
    DELETE FROM ticket_solved_days WHERE tenant_id = tenant;
    DELETE FROM ticket_open_days WHERE tenant_id = tenant;
    SELECT ticket_rollups_apply('{}', coalesce(array_agg(t), '{}')) FROM tickets t WHERE tenant_id = tenant;
$$;

-- Tickets already projected, as 1007 does for deals.
ALTER TABLE tickets NO FORCE ROW LEVEL SECURITY;
ALTER TABLE sla_breaches NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_created_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_solved_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_open_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE tickets DISABLE TRIGGER tickets_updated;
UPDATE tickets t SET breached = true
WHERE EXISTS (SELECT 1 FROM sla_breaches b WHERE b.tenant_id = t.tenant_id AND b.ticket_id = t.id);
ALTER TABLE tickets ENABLE TRIGGER tickets_updated;
SELECT ticket_rollups_rebuild(tenant_id) FROM (SELECT DISTINCT tenant_id FROM tickets) tenants;
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
ALTER TABLE sla_breaches FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_created_days FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_solved_days FORCE ROW LEVEL SECURITY;
ALTER TABLE ticket_open_days FORCE ROW LEVEL SECURITY;
