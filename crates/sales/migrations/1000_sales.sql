-- Sales pipeline: leads (routing, scoring, conversion), pipelines and
-- stages, opportunities with stage history, quotas. Every table is
-- tenant-scoped with row-level security.

CREATE TABLE leads (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    first_name     text NOT NULL DEFAULT '',
    last_name      text NOT NULL DEFAULT '',
    email          text NOT NULL DEFAULT '',
    phone          text NOT NULL DEFAULT '',
    title          text NOT NULL DEFAULT '',
    company        text NOT NULL DEFAULT '',
    company_domain text NOT NULL DEFAULT '',
    source         smallint NOT NULL,
    campaign_id    uuid,
    status         smallint NOT NULL,
    owner_id       uuid,
    team_id        uuid,
    score          integer NOT NULL DEFAULT 0,
    country        text NOT NULL DEFAULT '',
    region         text NOT NULL DEFAULT '',
    industry       text NOT NULL DEFAULT '',
    company_size   integer NOT NULL DEFAULT 0,
    converted_account_id     uuid,
    converted_contact_id     uuid,
    converted_opportunity_id uuid,
    converted_at   timestamptz,
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL DEFAULT '',
    version        bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX leads_request ON leads (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX leads_status ON leads (tenant_id, status, id);
CREATE INDEX leads_owner ON leads (tenant_id, owner_id, id);
CREATE INDEX leads_contact ON leads (tenant_id, converted_contact_id) WHERE converted_contact_id IS NOT NULL;
CREATE INDEX leads_account ON leads (tenant_id, converted_account_id) WHERE converted_account_id IS NOT NULL;
SELECT crm_enable_tenant_rls('leads');

-- Engagements that earn (decaying) points.
CREATE TABLE lead_engagements (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    lead_id     uuid NOT NULL,
    engagement  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX lead_engagements_lead ON lead_engagements (tenant_id, lead_id);
SELECT crm_enable_tenant_rls('lead_engagements');

CREATE TABLE routing_rules (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    position   integer NOT NULL,
    name       text NOT NULL DEFAULT '',
    country    text NOT NULL DEFAULT '',
    region     text NOT NULL DEFAULT '',
    industry   text NOT NULL DEFAULT '',
    min_size   integer NOT NULL DEFAULT 0,
    max_size   integer NOT NULL DEFAULT 0,
    user_id    uuid,
    team_id    uuid,
    PRIMARY KEY (tenant_id, id),
    CHECK ((user_id IS NULL) <> (team_id IS NULL))
);
SELECT crm_enable_tenant_rls('routing_rules');

-- Round robin: the member who waited longest gets the next lead.
CREATE TABLE team_rosters (
    tenant_id        uuid NOT NULL,
    team_id          uuid NOT NULL,
    user_id          uuid NOT NULL,
    active           boolean NOT NULL DEFAULT true,
    last_assigned_at timestamptz,
    assigned_count   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, team_id, user_id)
);
SELECT crm_enable_tenant_rls('team_rosters');

CREATE TABLE scoring_settings (
    tenant_id      uuid NOT NULL PRIMARY KEY,
    rules          jsonb NOT NULL DEFAULT '[]',
    half_life_days integer NOT NULL DEFAULT 0
);
SELECT crm_enable_tenant_rls('scoring_settings');

CREATE TABLE pipelines (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX pipelines_one_default ON pipelines (tenant_id) WHERE is_default;
CREATE UNIQUE INDEX pipelines_name ON pipelines (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('pipelines');

CREATE TABLE stages (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    pipeline_id uuid NOT NULL,
    name        text NOT NULL,
    position    integer NOT NULL,
    probability integer NOT NULL CHECK (probability BETWEEN 0 AND 100),
    kind        smallint NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, pipeline_id) REFERENCES pipelines (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX stages_pipeline ON stages (tenant_id, pipeline_id, position);
SELECT crm_enable_tenant_rls('stages');

CREATE TABLE opportunities (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    pipeline_id       uuid NOT NULL,
    stage_id          uuid NOT NULL,
    account_id        uuid,
    contacts          jsonb NOT NULL DEFAULT '[]',
    name              text NOT NULL,
    amount            numeric(28, 10) NOT NULL DEFAULT 0,
    currency          char(3) NOT NULL,
    close_date        date,
    probability       integer NOT NULL DEFAULT 0,
    forecast_category smallint NOT NULL,
    status            smallint NOT NULL,
    owner_id          uuid,
    team_id           uuid,
    campaign_id       uuid,
    competitors       text[] NOT NULL DEFAULT '{}',
    lost_reason       text NOT NULL DEFAULT '',
    next_step         text NOT NULL DEFAULT '',
    line_items        jsonb NOT NULL DEFAULT '[]',
    lead_id           uuid,
    closed_at         timestamptz,
    request_id        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT '',
    version           bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, stage_id) REFERENCES stages (tenant_id, id)
);
CREATE UNIQUE INDEX opportunities_request ON opportunities (tenant_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX opportunities_stage ON opportunities (tenant_id, stage_id);
CREATE INDEX opportunities_account ON opportunities (tenant_id, account_id);
CREATE INDEX opportunities_owner ON opportunities (tenant_id, owner_id, id);
-- Forecasts: every sum is over close dates of a period.
CREATE INDEX opportunities_forecast ON opportunities (tenant_id, close_date)
    INCLUDE (status, forecast_category, amount, probability, currency, owner_id, team_id);
SELECT crm_enable_tenant_rls('opportunities');

CREATE TABLE stage_history (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    opportunity_id uuid NOT NULL,
    from_stage_id  uuid,
    to_stage_id    uuid NOT NULL,
    changed_at     timestamptz NOT NULL DEFAULT now(),
    changed_by     text NOT NULL DEFAULT '',
    amount         numeric(28, 10) NOT NULL,
    currency       char(3) NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX stage_history_opportunity ON stage_history (tenant_id, opportunity_id, changed_at);
SELECT crm_enable_tenant_rls('stage_history');

CREATE TABLE quotas (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    user_id      uuid,
    team_id      uuid,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    amount       numeric(28, 10) NOT NULL,
    currency     char(3) NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((user_id IS NULL) <> (team_id IS NULL)),
    CHECK (period_end >= period_start)
);
CREATE UNIQUE INDEX quotas_target ON quotas (tenant_id, coalesce(user_id, team_id), period_start, period_end, currency);
SELECT crm_enable_tenant_rls('quotas');
