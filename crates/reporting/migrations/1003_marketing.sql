-- Marketing's read models, from crm.marketing.* events: campaigns with
-- their costs, members' progress, each message's fate and the revenue
-- attributed to campaigns; and the service desk's SLA breaches and NPS
-- answers. Ids, enums, amounts and times only.

CREATE TABLE campaigns (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    -- The source's CampaignType and CampaignStatus.
    type       smallint NOT NULL DEFAULT 0,
    status     smallint NOT NULL DEFAULT 0,
    owner_id   uuid,
    team_id    uuid,
    -- The budget's currency; costs are booked in it.
    currency   text NOT NULL DEFAULT '',
    budget     numeric(20, 2),
    cost       numeric(20, 2) NOT NULL DEFAULT 0,
    starts_at  timestamptz,
    ends_at    timestamptz,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('campaigns');

CREATE TABLE campaign_members (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    campaign_id  uuid NOT NULL,
    -- The source's MemberStatus.
    status       smallint NOT NULL DEFAULT 0,
    responded_at timestamptz,
    converted_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX campaign_members_campaign ON campaign_members (tenant_id, campaign_id);
SELECT crm_enable_tenant_rls('campaign_members');

-- One row per message sent (a send's recipient).
CREATE TABLE messages (
    tenant_id       uuid NOT NULL,
    recipient_id    uuid NOT NULL,
    campaign_id     uuid,
    channel         smallint NOT NULL DEFAULT 0,
    sent_at         timestamptz NOT NULL,
    delivered_at    timestamptz,
    opened_at       timestamptz,
    clicked_at      timestamptz,
    bounced_at      timestamptz,
    unsubscribed_at timestamptz,
    PRIMARY KEY (tenant_id, recipient_id)
);
CREATE INDEX messages_campaign ON messages (tenant_id, campaign_id);
SELECT crm_enable_tenant_rls('messages');

-- A won deal's revenue shared among campaigns, per attribution model (the
-- source's AttributionModel); a recomputation replaces the deal's shares.
CREATE TABLE attributions (
    tenant_id      uuid NOT NULL,
    opportunity_id uuid NOT NULL,
    campaign_id    uuid NOT NULL,
    model          smallint NOT NULL,
    amount         numeric(20, 2) NOT NULL,
    currency       text NOT NULL,
    PRIMARY KEY (tenant_id, opportunity_id, campaign_id, model)
);
CREATE INDEX attributions_campaign ON attributions (tenant_id, campaign_id);
SELECT crm_enable_tenant_rls('attributions');

-- The service desk: SLA targets breached (the source's SlaMetric; a next
-- response target can be breached more than once), and NPS answers.
CREATE TABLE sla_breaches (
    tenant_id   uuid NOT NULL,
    ticket_id   uuid NOT NULL,
    metric      smallint NOT NULL,
    breached_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id, metric, breached_at)
);
CREATE INDEX sla_breaches_at ON sla_breaches (tenant_id, breached_at);
SELECT crm_enable_tenant_rls('sla_breaches');
CREATE TABLE nps_answers (
    tenant_id   uuid NOT NULL,
    survey_id   uuid NOT NULL,
    contact_id  uuid NOT NULL,
    account_id  uuid,
    score       smallint NOT NULL,
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, survey_id, contact_id)
);
CREATE INDEX nps_answers_answered ON nps_answers (tenant_id, answered_at);
SELECT crm_enable_tenant_rls('nps_answers');
