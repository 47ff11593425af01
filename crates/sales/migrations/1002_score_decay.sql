-- Leads whose engagement points are still decaying: rescored daily until
-- their last engagement is 60 days old. Ids and times only, outside
-- row-level security, so one scanner sees every tenant's.
CREATE TABLE lead_decay_schedule (
    tenant_id uuid NOT NULL,
    lead_id   uuid NOT NULL,
    next_at   timestamptz NOT NULL,
    until_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, lead_id)
);
CREATE INDEX lead_decay_schedule_next ON lead_decay_schedule (next_at);
