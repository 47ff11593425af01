-- SLAs: business-hour calendars, policies, the clocks of each ticket's
-- targets, and the alarms the SLA scanner fires.

CREATE TABLE business_calendars (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    time_zone  text NOT NULL,
    hours      jsonb NOT NULL,
    holidays   text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX business_calendars_name ON business_calendars (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('business_calendars');

CREATE TABLE sla_policies (
    tenant_id              uuid NOT NULL,
    id                     uuid NOT NULL,
    name                   text NOT NULL,
    position               integer NOT NULL DEFAULT 0,
    active                 boolean NOT NULL,
    priorities             smallint[] NOT NULL DEFAULT '{}',
    types                  smallint[] NOT NULL DEFAULT '{}',
    channels               smallint[] NOT NULL DEFAULT '{}',
    group_ids              uuid[] NOT NULL DEFAULT '{}',
    tags                   text[] NOT NULL DEFAULT '{}',
    calendar_id            uuid,
    first_response_minutes integer NOT NULL,
    next_response_minutes  integer NOT NULL,
    resolution_minutes     integer NOT NULL,
    warning_percent        integer NOT NULL,
    escalations            jsonb NOT NULL DEFAULT '[]',
    created_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text NOT NULL DEFAULT '',
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text NOT NULL DEFAULT '',
    version                bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, calendar_id) REFERENCES business_calendars (tenant_id, id)
);
CREATE INDEX sla_policies_order ON sla_policies (tenant_id, position, id);
SELECT crm_enable_tenant_rls('sla_policies');

-- One row per target of a ticket (metric: first response, next response,
-- resolution). Changed only under the ticket's row lock.
CREATE TABLE ticket_slas (
    tenant_id     uuid NOT NULL,
    ticket_id     uuid NOT NULL,
    metric        smallint NOT NULL,
    policy_id     uuid NOT NULL,
    calendar_id   uuid,
    target        bigint NOT NULL,
    warn_after    bigint NOT NULL,
    elapsed       bigint NOT NULL,
    running_since timestamptz,
    warned_at     timestamptz,
    breached_at   timestamptz,
    completed_at  timestamptz,
    PRIMARY KEY (tenant_id, ticket_id, metric),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
SELECT crm_enable_tenant_rls('ticket_slas');

-- When each running target next reaches a stage (ids and times only,
-- outside row-level security, so one scan sees every tenant). Pods take
-- due alarms with SKIP LOCKED; the one that takes an alarm marks the
-- stage on the clock and moves or removes the alarm in one transaction.
CREATE TABLE sla_alarms (
    tenant_id uuid NOT NULL,
    ticket_id uuid NOT NULL,
    metric    smallint NOT NULL,
    fire_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id, metric),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX sla_alarms_due ON sla_alarms (fire_at);
