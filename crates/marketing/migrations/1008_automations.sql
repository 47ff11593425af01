-- Automation rules (ADR 0024): a trigger (an event type of any service),
-- conditions on the event's data, actions for the event's contact. Each
-- firing makes one run per action, unique per rule, event and action, so
-- a redelivered event fires nothing twice.
CREATE TABLE automation_rules (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    name         text NOT NULL,
    status       smallint NOT NULL,
    event_type   text NOT NULL,
    conditions   jsonb NOT NULL DEFAULT '[]',
    contact_path text NOT NULL DEFAULT '',
    actions      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text NOT NULL DEFAULT '',
    version      bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX automation_rules_trigger ON automation_rules (tenant_id, event_type) WHERE status = 1;
SELECT crm_enable_tenant_rls('automation_rules');

CREATE TABLE rule_runs (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    rule_id         uuid NOT NULL,
    event_id        text NOT NULL,
    event_type      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    contact_id      uuid NOT NULL,
    action_index    integer NOT NULL,
    action          jsonb NOT NULL,
    status          smallint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    error           text NOT NULL DEFAULT '',
    next_attempt_at timestamptz,
    finished_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, rule_id, event_id, action_index),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES automation_rules (tenant_id, id)
);
CREATE INDEX rule_runs_rule ON rule_runs (tenant_id, rule_id, id);
CREATE INDEX rule_runs_contact ON rule_runs (tenant_id, contact_id);
SELECT crm_enable_tenant_rls('rule_runs');

-- Runs waiting for their (next) attempt, across tenants: ids and times
-- only, outside row-level security like outbound_queue. Runners lock a due
-- row with SKIP LOCKED while they run it, so each attempt runs on one pod.
CREATE TABLE rule_run_queue (
    tenant_id uuid NOT NULL,
    run_id    uuid NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, run_id)
);
CREATE INDEX rule_run_queue_due ON rule_run_queue (due_at);
