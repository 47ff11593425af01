-- Automation rules reach further (ADR 0024): lead actions in sales (the
-- lead found at `lead_path`), webhook calls (the event kept on the run as
-- the JSON body to post), and date triggers (a contact's birthday or date
-- custom field coming round).
ALTER TABLE automation_rules
    ADD COLUMN lead_path text NOT NULL DEFAULT '',
    ADD COLUMN date_trigger jsonb;

ALTER TABLE rule_runs
    ALTER COLUMN contact_id DROP NOT NULL,
    ADD COLUMN lead_id uuid,
    ADD COLUMN payload jsonb;

-- The contacts' dates, kept from the customers service's contact events
-- (`birthday`, `custom_fields.<name>` for date values): what date triggers
-- look up by month and day.
CREATE TABLE contact_dates (
    tenant_id  uuid NOT NULL,
    contact_id uuid NOT NULL,
    field      text NOT NULL,
    date       date NOT NULL,
    month      smallint NOT NULL,
    day        smallint NOT NULL,
    PRIMARY KEY (tenant_id, contact_id, field)
);
CREATE INDEX contact_dates_day ON contact_dates (tenant_id, field, month, day);
SELECT crm_enable_tenant_rls('contact_dates');

-- The next firing of each date rule, across tenants: ids and times only,
-- outside row-level security like the other queues. A scan locks a due
-- row with SKIP LOCKED, fires that day once and moves the row on a day.
CREATE TABLE rule_schedule (
    tenant_id uuid NOT NULL,
    rule_id   uuid NOT NULL,
    fire_on   date NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, rule_id)
);
CREATE INDEX rule_schedule_due ON rule_schedule (due_at);
