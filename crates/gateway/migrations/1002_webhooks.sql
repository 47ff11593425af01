-- Outbound webhooks: endpoints tenants register, and one delivery per
-- (endpoint, event) with every attempt's outcome.
CREATE TABLE webhooks (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL,
    url         text NOT NULL,
    event_types text[] NOT NULL,
    secret      text NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('webhooks');

CREATE TABLE webhook_deliveries (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    webhook_id       uuid NOT NULL,
    event_id         uuid NOT NULL,
    event_type       text NOT NULL,
    envelope         bytea NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, webhook_id, event_id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
SELECT crm_enable_tenant_rls('webhook_deliveries');
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (tenant_id, webhook_id, created_at DESC);

-- Deliveries waiting for their next attempt, across tenants, for the
-- dispatcher (which runs without a tenant scope). Ids and times only.
CREATE TABLE webhook_queue (
    tenant_id     uuid NOT NULL,
    delivery_id   uuid NOT NULL,
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, delivery_id)
);
CREATE INDEX webhook_queue_due ON webhook_queue (next_attempt);
