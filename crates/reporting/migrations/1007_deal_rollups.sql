-- Rollups of deals: what the sales dashboard sums, kept per key by
-- triggers on `deals` in the writing transaction, so a dashboard adds up
-- a few thousand rollup rows instead of a million deals and is exactly as
-- fresh as the deals themselves (ADR 0033, addendum "rollups").
--
-- Every rollup key carries the visibility columns (owner_id, team_id) and
-- the filters (pipeline_id, region, currency), so `Scope::push_condition`
-- and the dashboard's filters read them as they read `deals`. NULL is a
-- key value like any other (NULLS NOT DISTINCT).

-- The region of the deal's account (the dashboards' region filter) and the
-- furthest open stage position the deal entered (the funnel), kept on the
-- deal so that its rollups can be keyed by them.
ALTER TABLE deals ADD COLUMN region text, ADD COLUMN furthest integer;

-- Open deals now, by pipeline, stage, owner, team, region, currency and
-- expected close month: open counts, amounts and the weighted pipeline.
CREATE TABLE deal_open_totals (
    tenant_id   uuid NOT NULL,
    pipeline_id uuid,
    stage_id    uuid,
    owner_id    uuid,
    team_id     uuid,
    region      text,
    currency    text NOT NULL,
    close_month date,
    deals       bigint NOT NULL,
    amount      numeric NOT NULL,
    -- sum(amount x probability / 100), unrounded.
    weighted    numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, pipeline_id, stage_id, owner_id, team_id, region, currency, close_month)
);
SELECT crm_enable_tenant_rls('deal_open_totals');

-- Deals closed (won or lost) per UTC day of closing: counts, amounts and
-- days from creation to close; the campaign of a won deal and the reason
-- of a lost one.
CREATE TABLE deal_closed_days (
    tenant_id     uuid NOT NULL,
    day           date NOT NULL,
    pipeline_id   uuid,
    owner_id      uuid,
    team_id       uuid,
    region        text,
    currency      text NOT NULL,
    status        smallint NOT NULL,
    campaign_id   uuid,
    lost_reason   text NOT NULL,
    deals         bigint NOT NULL,
    amount        numeric NOT NULL,
    -- sum of (closed_at - created_at) in seconds.
    cycle_seconds numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, status, campaign_id, lost_reason)
);
SELECT crm_enable_tenant_rls('deal_closed_days');

-- Deals per UTC day of creation (the funnel's cohorts): how far they got,
-- their status and, when won, the won stage.
CREATE TABLE deal_cohort_days (
    tenant_id    uuid NOT NULL,
    day          date NOT NULL,
    pipeline_id  uuid,
    owner_id     uuid,
    team_id      uuid,
    region       text,
    furthest     integer,
    status       smallint NOT NULL,
    won_stage_id uuid,
    deals        bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, pipeline_id, owner_id, team_id, region, furthest, status, won_stage_id)
);
SELECT crm_enable_tenant_rls('deal_cohort_days');

-- Competitors named on deals closed per UTC day: won and lost against
-- each.
CREATE TABLE deal_competitor_days (
    tenant_id   uuid NOT NULL,
    day         date NOT NULL,
    pipeline_id uuid,
    owner_id    uuid,
    team_id     uuid,
    region      text,
    status      smallint NOT NULL,
    competitor  text NOT NULL,
    deals       bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, pipeline_id, owner_id, team_id, region, status, competitor)
);
SELECT crm_enable_tenant_rls('deal_competitor_days');

-- Won deals per UTC day of closing and account (won by account).
CREATE TABLE deal_account_days (
    tenant_id   uuid NOT NULL,
    day         date NOT NULL,
    pipeline_id uuid,
    owner_id    uuid,
    team_id     uuid,
    region      text,
    currency    text NOT NULL,
    account_id  uuid NOT NULL,
    deals       bigint NOT NULL,
    amount      numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, account_id)
);
SELECT crm_enable_tenant_rls('deal_account_days');

-- Won deals' line items per UTC day of closing and product (won by
-- product), in the line's currency: kept from both sides, `deals` (a won
-- deal's lines move with it) and `deal_lines` (lines replaced on a win).
CREATE TABLE deal_product_days (
    tenant_id   uuid NOT NULL,
    day         date NOT NULL,
    pipeline_id uuid,
    owner_id    uuid,
    team_id     uuid,
    region      text,
    currency    text NOT NULL,
    product_id  uuid,
    description text NOT NULL,
    lines       bigint NOT NULL,
    amount      numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, product_id, description)
);
SELECT crm_enable_tenant_rls('deal_product_days');

-- Keeps `target`'s rollups by `apply(removed target[], added target[])`:
-- statement-level triggers after INSERT, UPDATE and DELETE (named
-- <target>_inserted, _updated, _deleted) hand it the transition tables.
-- A statement that writes many rows (a pipeline's stages reordered, an
-- account merged) updates each rollup key once, not once per row; an
-- update that changed no row (an older version) does nothing.
CREATE FUNCTION crm_keep_rollups(target text, apply text) RETURNS void
LANGUAGE plpgsql AS $helper$
BEGIN
    EXECUTE format($f$
        CREATE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            PERFORM %4$I('{}', (SELECT coalesce(array_agg(n::%5$I), '{}') FROM new_rows n));
            RETURN NULL;
        END $b$;
        CREATE FUNCTION %2$I() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            IF NOT EXISTS (SELECT FROM new_rows) THEN
                RETURN NULL;
            END IF;
            PERFORM %4$I(
                (SELECT coalesce(array_agg(o::%5$I), '{}') FROM old_rows o),
                (SELECT coalesce(array_agg(n::%5$I), '{}') FROM new_rows n));
            RETURN NULL;
        END $b$;
        CREATE FUNCTION %3$I() RETURNS trigger LANGUAGE plpgsql AS $b$
        BEGIN
            PERFORM %4$I((SELECT coalesce(array_agg(o::%5$I), '{}') FROM old_rows o), '{}');
            RETURN NULL;
        END $b$;
        CREATE TRIGGER %1$I AFTER INSERT ON %5$I REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION %1$I();
        CREATE TRIGGER %2$I AFTER UPDATE ON %5$I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION %2$I();
        CREATE TRIGGER %3$I AFTER DELETE ON %5$I REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION %3$I();
    $f$, target || '_inserted', target || '_updated', target || '_deleted', apply, target);
END $helper$;

-- Adds the deals in `added` to the rollups and takes those in `removed`
-- out, in one statement. Keys are written in their sort order, so two
-- transactions moving deals between the same keys lock them in the same
-- order. PL/pgSQL, not SQL: its plan is kept for the session.
CREATE FUNCTION deal_rollups_apply(removed deals[], added deals[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS MATERIALIZED (
        SELECT r.*, -1 AS sign FROM unnest(removed) r
        UNION ALL
        SELECT a.*, 1 AS sign FROM unnest(added) a
    ), open AS (
        INSERT INTO deal_open_totals AS t
        SELECT tenant_id, pipeline_id, stage_id, owner_id, team_id, region, currency,
               date_trunc('month', close_date)::date, sum(sign), sum(sign * amount), sum(sign * amount * probability / 100)
        FROM changed WHERE status = 1
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        HAVING sum(sign) <> 0 OR sum(sign * amount) <> 0 OR sum(sign * amount * probability / 100) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (tenant_id, pipeline_id, stage_id, owner_id, team_id, region, currency, close_month) DO UPDATE
        SET deals = t.deals + EXCLUDED.deals, amount = t.amount + EXCLUDED.amount, weighted = t.weighted + EXCLUDED.weighted
    ), closed AS (
        INSERT INTO deal_closed_days AS t
        SELECT tenant_id, (closed_at AT TIME ZONE 'UTC')::date, pipeline_id, owner_id, team_id, region, currency, status,
               CASE WHEN status = 2 THEN campaign_id END, CASE WHEN status = 3 THEN lost_reason ELSE '' END,
               sum(sign), sum(sign * amount), sum(sign * extract(epoch FROM closed_at - created_at))
        FROM changed WHERE status IN (2, 3) AND closed_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        HAVING sum(sign) <> 0 OR sum(sign * amount) <> 0 OR sum(sign * extract(epoch FROM closed_at - created_at)) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, status, campaign_id, lost_reason) DO UPDATE
        SET deals = t.deals + EXCLUDED.deals, amount = t.amount + EXCLUDED.amount, cycle_seconds = t.cycle_seconds + EXCLUDED.cycle_seconds
    ), accounts AS (
        INSERT INTO deal_account_days AS t
        SELECT tenant_id, (closed_at AT TIME ZONE 'UTC')::date, pipeline_id, owner_id, team_id, region, currency, account_id,
               sum(sign), sum(sign * amount)
        FROM changed WHERE status = 2 AND closed_at IS NOT NULL AND account_id IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        HAVING sum(sign) <> 0 OR sum(sign * amount) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, account_id) DO UPDATE
        SET deals = t.deals + EXCLUDED.deals, amount = t.amount + EXCLUDED.amount
    ), products AS (
        INSERT INTO deal_product_days AS t
        SELECT c.tenant_id, (c.closed_at AT TIME ZONE 'UTC')::date, c.pipeline_id, c.owner_id, c.team_id, c.region, l.currency,
               l.product_id, l.description, sum(c.sign), sum(c.sign * l.total)
        FROM changed c JOIN deal_lines l ON l.tenant_id = c.tenant_id AND l.deal_id = c.id
        WHERE c.status = 2 AND c.closed_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        HAVING sum(c.sign) <> 0 OR sum(c.sign * l.total) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, product_id, description) DO UPDATE
        SET lines = t.lines + EXCLUDED.lines, amount = t.amount + EXCLUDED.amount
    ), competitors AS (
        INSERT INTO deal_competitor_days AS t
        SELECT tenant_id, (closed_at AT TIME ZONE 'UTC')::date, pipeline_id, owner_id, team_id, region, status, competitor, sum(sign)
        FROM changed, unnest(competitors) AS competitor
        WHERE status IN (2, 3) AND closed_at IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        HAVING sum(sign) <> 0
        ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
        ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, status, competitor) DO UPDATE
        SET deals = t.deals + EXCLUDED.deals
    )
    INSERT INTO deal_cohort_days AS t
    SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, pipeline_id, owner_id, team_id, region, furthest, status,
           CASE WHEN status = 2 THEN stage_id END, sum(sign)
    FROM changed
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    HAVING sum(sign) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, furthest, status, won_stage_id) DO UPDATE
    SET deals = t.deals + EXCLUDED.deals;
END $$;

-- Lines added to or taken from a won deal, counted with the deal as it is.
CREATE FUNCTION deal_line_rollups_apply(removed deal_lines[], added deal_lines[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH changed AS (
        SELECT r.*, -1 AS sign FROM unnest(removed) r
        UNION ALL
        SELECT a.*, 1 AS sign FROM unnest(added) a
    )
    INSERT INTO deal_product_days AS t
    SELECT d.tenant_id, (d.closed_at AT TIME ZONE 'UTC')::date, d.pipeline_id, d.owner_id, d.team_id, d.region, c.currency,
           c.product_id, c.description, sum(c.sign), sum(c.sign * c.total)
    FROM changed c JOIN deals d ON d.tenant_id = c.tenant_id AND d.id = c.deal_id
    WHERE d.status = 2 AND d.closed_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    HAVING sum(c.sign) <> 0 OR sum(c.sign * c.total) <> 0
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ON CONFLICT (tenant_id, day, pipeline_id, owner_id, team_id, region, currency, product_id, description) DO UPDATE
    SET lines = t.lines + EXCLUDED.lines, amount = t.amount + EXCLUDED.amount;
END $$;
SELECT crm_keep_rollups('deal_lines', 'deal_line_rollups_apply');

SELECT crm_keep_rollups('deals', 'deal_rollups_apply');

-- The rollups of one tenant computed again from its deals, in place of
-- what they hold (the check that they agree, and the repair if not).
CREATE FUNCTION deal_rollups_rebuild(tenant uuid) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM deal_open_totals WHERE tenant_id = tenant;
    DELETE FROM deal_closed_days WHERE tenant_id = tenant;
    DELETE FROM deal_cohort_days WHERE tenant_id = tenant;
    DELETE FROM deal_competitor_days WHERE tenant_id = tenant;
    DELETE FROM deal_account_days WHERE tenant_id = tenant;
    DELETE FROM deal_product_days WHERE tenant_id = tenant;
    SELECT deal_rollups_apply('{}', coalesce(array_agg(d), '{}')) FROM deals d WHERE tenant_id = tenant;
$$;

-- Deals already projected: their region and furthest stage, then their
-- rollups. The table owner reads every tenant here (RLS is forced for
-- the service's queries, not for this one-off).
ALTER TABLE deals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_lines NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_open_totals NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_closed_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_cohort_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_competitor_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_product_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_account_days NO FORCE ROW LEVEL SECURITY;
ALTER TABLE deals DISABLE TRIGGER deals_updated;
UPDATE deals d SET region = a.region FROM accounts a WHERE a.tenant_id = d.tenant_id AND a.id = d.account_id;
UPDATE deals d SET furthest = (
    SELECT max(s.position) FROM deal_stages ds JOIN stages s ON s.tenant_id = ds.tenant_id AND s.id = ds.stage_id
    WHERE ds.tenant_id = d.tenant_id AND ds.deal_id = d.id AND s.kind = 1);
ALTER TABLE deals ENABLE TRIGGER deals_updated;
SELECT deal_rollups_rebuild(tenant_id) FROM (SELECT DISTINCT tenant_id FROM deals) tenants;
ALTER TABLE deals FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_lines FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_open_totals FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_closed_days FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_cohort_days FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_competitor_days FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_product_days FORCE ROW LEVEL SECURITY;
ALTER TABLE deal_account_days FORCE ROW LEVEL SECURITY;
