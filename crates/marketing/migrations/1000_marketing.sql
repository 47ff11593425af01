-- Marketing: campaigns with their costs and members, the consent replica
-- kept from the customers service's events, and suppression lists. Every
-- tenant table is under row-level security.

CREATE TABLE campaigns (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    name               text NOT NULL,
    type               smallint NOT NULL,
    status             smallint NOT NULL,
    starts_at          timestamptz,
    ends_at            timestamptz,
    owner_id           uuid,
    team_id            uuid,
    -- One currency per campaign: budget, expected revenue and costs.
    currency           text NOT NULL DEFAULT '',
    budget             numeric,
    expected_revenue   numeric,
    actual_cost        numeric NOT NULL DEFAULT 0,
    parent_campaign_id uuid,
    goal               text NOT NULL DEFAULT '',
    tags               text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text NOT NULL DEFAULT '',
    version            bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_campaign_id) REFERENCES campaigns (tenant_id, id),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at)
);
CREATE INDEX campaigns_status ON campaigns (tenant_id, status, id);
CREATE INDEX campaigns_owner ON campaigns (tenant_id, owner_id, id);
CREATE INDEX campaigns_parent ON campaigns (tenant_id, parent_campaign_id, id)
    WHERE parent_campaign_id IS NOT NULL;
SELECT crm_enable_tenant_rls('campaigns');

CREATE TABLE campaign_costs (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    campaign_id uuid NOT NULL,
    amount      numeric NOT NULL,
    incurred_on date NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id)
);
CREATE INDEX campaign_costs_campaign ON campaign_costs (tenant_id, campaign_id, id);
SELECT crm_enable_tenant_rls('campaign_costs');

-- A contact or a lead in a campaign; the first time each status was
-- reached is kept beside the current one.
CREATE TABLE campaign_members (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    campaign_id     uuid NOT NULL,
    contact_id      uuid,
    lead_id         uuid,
    status          smallint NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    opened_at       timestamptz,
    clicked_at      timestamptz,
    responded_at    timestamptz,
    converted_at    timestamptz,
    unsubscribed_at timestamptz,
    bounced_at      timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id),
    CHECK (num_nonnulls(contact_id, lead_id) = 1)
);
CREATE UNIQUE INDEX campaign_members_contact ON campaign_members (tenant_id, campaign_id, contact_id)
    WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX campaign_members_lead ON campaign_members (tenant_id, campaign_id, lead_id)
    WHERE lead_id IS NOT NULL;
CREATE INDEX campaign_members_page ON campaign_members (tenant_id, campaign_id, id);
-- Merges and erasures find a person's memberships in every campaign.
CREATE INDEX campaign_members_of_contact ON campaign_members (tenant_id, contact_id)
    WHERE contact_id IS NOT NULL;
SELECT crm_enable_tenant_rls('campaign_members');

-- The customers service's consent per contact and channel, as its events
-- last told it; `changed_at` is the event's time, so an older event that
-- arrives late never overwrites a newer state.
CREATE TABLE contact_consents (
    tenant_id  uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel    smallint NOT NULL,
    status     smallint NOT NULL,
    source     text NOT NULL DEFAULT '',
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, contact_id, channel)
);
SELECT crm_enable_tenant_rls('contact_consents');

CREATE TABLE suppressions (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    channel    smallint NOT NULL,
    address    text NOT NULL,
    reason     smallint NOT NULL,
    note       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, channel, address)
);
SELECT crm_enable_tenant_rls('suppressions');

-- Addresses dead for everyone (hard bounces), as the hex SHA-256 of the
-- normalised address: no tenant's data, so outside row-level security,
-- and no address in clear.
CREATE TABLE global_suppressions (
    channel      smallint NOT NULL,
    address_hash text NOT NULL,
    reason       smallint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, address_hash)
);

-- Idempotent creates (kit::idempotency): a retried create with the same
-- request id returns the record the first call made; the same id with a
-- different request is refused.
CREATE TABLE create_requests (
    tenant_id   uuid NOT NULL,
    entity      text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea,
    record_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, request_id)
);
SELECT crm_enable_tenant_rls('create_requests');
