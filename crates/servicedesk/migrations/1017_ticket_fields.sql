-- Custom fields of tickets: the tenant's definitions (the customers
-- service's model) and each ticket's values (JSON, as customers stores
-- them).

CREATE TABLE ticket_fields (
    tenant_id  uuid NOT NULL,
    key        text NOT NULL,
    label      text NOT NULL,
    type       smallint NOT NULL,
    required   boolean NOT NULL DEFAULT false,
    options    text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, key)
);
SELECT crm_enable_tenant_rls('ticket_fields');

ALTER TABLE tickets ADD COLUMN custom_fields jsonb NOT NULL DEFAULT '{}';
