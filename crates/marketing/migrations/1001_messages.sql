-- Sending: sender identities, templates, sends and their recipients, and
-- the outbound queue the senders claim from.

CREATE TABLE sender_identities (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    from_address text NOT NULL,
    from_name    text NOT NULL DEFAULT '',
    reply_to     text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL DEFAULT '',
    version      bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, from_address)
);
SELECT crm_enable_tenant_rls('sender_identities');

CREATE TABLE templates (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    channel    smallint NOT NULL,
    subject    text NOT NULL DEFAULT '',
    html_body  text NOT NULL DEFAULT '',
    text_body  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT crm_enable_tenant_rls('templates');

CREATE TABLE sends (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    template_id        uuid NOT NULL,
    sender_identity_id uuid,
    campaign_id        uuid,
    segment_id         uuid,
    contact_ids        uuid[] NOT NULL DEFAULT '{}',
    channel            smallint NOT NULL,
    status             smallint NOT NULL,
    completed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text NOT NULL DEFAULT '',
    version            bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, template_id) REFERENCES templates (tenant_id, id),
    FOREIGN KEY (tenant_id, sender_identity_id) REFERENCES sender_identities (tenant_id, id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id)
);
CREATE INDEX sends_campaign ON sends (tenant_id, campaign_id, id) WHERE campaign_id IS NOT NULL;
SELECT crm_enable_tenant_rls('sends');

-- One row per recipient: its address and the template variables as
-- resolved when the send was made, and its outcome.
CREATE TABLE send_recipients (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    send_id     uuid NOT NULL,
    contact_id  uuid NOT NULL,
    address     text NOT NULL,
    variables   jsonb NOT NULL DEFAULT '{}',
    status      smallint NOT NULL,
    skip_reason smallint NOT NULL DEFAULT 0,
    error       text NOT NULL DEFAULT '',
    attempts    integer NOT NULL DEFAULT 0,
    sent_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, send_id) REFERENCES sends (tenant_id, id)
);
CREATE INDEX send_recipients_send ON send_recipients (tenant_id, send_id, id);
CREATE INDEX send_recipients_contact ON send_recipients (tenant_id, contact_id);
SELECT crm_enable_tenant_rls('send_recipients');

-- Recipients waiting to be sent, across tenants (ids and times only, so
-- outside row-level security, like invoice_due_dates in sales). `due_at`
-- spaces each tenant's messages at its rate; a sender claims due rows
-- with SKIP LOCKED and sets `claimed_until`; a row still claimed after
-- that time belongs to a sender that stopped mid-way.
CREATE TABLE outbound_queue (
    tenant_id     uuid NOT NULL,
    recipient_id  uuid NOT NULL,
    send_id       uuid NOT NULL,
    due_at        timestamptz NOT NULL,
    claimed_until timestamptz,
    PRIMARY KEY (tenant_id, recipient_id)
);
CREATE INDEX outbound_queue_due ON outbound_queue (due_at) WHERE claimed_until IS NULL;
CREATE INDEX outbound_queue_claimed ON outbound_queue (claimed_until) WHERE claimed_until IS NOT NULL;
CREATE INDEX outbound_queue_send ON outbound_queue (tenant_id, send_id);

-- The next free sending slot per tenant: a new send's messages are
-- scheduled after the ones already queued, at the tenant's rate.
CREATE TABLE send_slots (
    tenant_id uuid PRIMARY KEY,
    next_at   timestamptz NOT NULL
);
SELECT crm_enable_tenant_rls('send_slots');
