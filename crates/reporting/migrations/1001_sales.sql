-- Sales read models, from crm.sales.* events, and the activities logged in
-- customers (crm.customers.activity.*). Owner and team are kept as
-- owner_id and team_id, the columns record visibility filters on. No
-- personal data: ids, amounts, enums and times only.

-- Pipelines and their stages in order (crm.sales.pipeline.changed).
CREATE TABLE pipelines (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('pipelines');

CREATE TABLE stages (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    pipeline_id uuid NOT NULL,
    name        text NOT NULL,
    position    integer NOT NULL,
    -- The source's StageKind: 1 open, 2 won, 3 lost.
    kind        smallint NOT NULL,
    probability integer NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX stages_pipeline ON stages (tenant_id, pipeline_id, position);
SELECT crm_enable_tenant_rls('stages');

-- Opportunities. Amounts are exact, in the deal's own currency.
CREATE TABLE deals (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    pipeline_id uuid,
    stage_id    uuid,
    account_id  uuid,
    owner_id    uuid,
    team_id     uuid,
    campaign_id uuid,
    lead_id     uuid,
    -- The source's OpportunityStatus: 1 open, 2 won, 3 lost.
    status      smallint NOT NULL DEFAULT 1,
    amount      numeric(20, 2) NOT NULL DEFAULT 0,
    currency    text NOT NULL DEFAULT '',
    probability integer NOT NULL DEFAULT 0,
    close_date  date,
    lost_reason text NOT NULL DEFAULT '',
    competitors text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    closed_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX deals_created ON deals (tenant_id, created_at);
CREATE INDEX deals_closed ON deals (tenant_id, closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX deals_open ON deals (tenant_id, stage_id) WHERE status = 1;
CREATE INDEX deals_lead ON deals (tenant_id, lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX deals_account ON deals (tenant_id, account_id);
SELECT crm_enable_tenant_rls('deals');

-- The stages each deal entered, and when first: the funnel's history.
CREATE TABLE deal_stages (
    tenant_id  uuid NOT NULL,
    deal_id    uuid NOT NULL,
    stage_id   uuid NOT NULL,
    entered_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, deal_id, stage_id)
);
SELECT crm_enable_tenant_rls('deal_stages');

-- A won deal's line items, as won (sales by product).
CREATE TABLE deal_lines (
    tenant_id   uuid NOT NULL,
    deal_id     uuid NOT NULL,
    line        integer NOT NULL,
    product_id  uuid,
    description text NOT NULL DEFAULT '',
    total       numeric(20, 2) NOT NULL,
    currency    text NOT NULL,
    PRIMARY KEY (tenant_id, deal_id, line)
);
SELECT crm_enable_tenant_rls('deal_lines');

-- Quotas of a user (owner_id) or a team (team_id).
CREATE TABLE quotas (
    tenant_id    uuid NOT NULL,
    owner_id     uuid,
    team_id      uuid,
    period_start date NOT NULL,
    period_end   date NOT NULL,
    currency     text NOT NULL,
    amount       numeric(20, 2) NOT NULL
);
CREATE UNIQUE INDEX quotas_key ON quotas (tenant_id, coalesce(owner_id, team_id), period_start, period_end, currency);
SELECT crm_enable_tenant_rls('quotas');

-- Leads: where they came from, and how fast someone answered them (the
-- first call, e-mail, meeting or chat about the lead, its qualification or
-- its conversion, whichever came first).
CREATE TABLE leads (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    -- The source's LeadSource.
    source            smallint NOT NULL DEFAULT 0,
    owner_id          uuid,
    team_id           uuid,
    campaign_id       uuid,
    created_at        timestamptz NOT NULL,
    first_response_at timestamptz,
    converted_at      timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX leads_created ON leads (tenant_id, created_at);
SELECT crm_enable_tenant_rls('leads');

-- Activities logged in customers: kind, whose, when. The team is the
-- author's first team when it was logged.
CREATE TABLE activities (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    -- The source's ActivityKind.
    kind         smallint NOT NULL,
    owner_id     uuid,
    team_id      uuid,
    occurred_at  timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX activities_occurred ON activities (tenant_id, occurred_at);
SELECT crm_enable_tenant_rls('activities');
