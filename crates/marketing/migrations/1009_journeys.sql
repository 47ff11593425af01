-- Journeys (ADR 0025): multi-step flows per contact. The definition is the
-- Journey message as protobuf (steps and all), checked when saved.
CREATE TABLE journeys (
    tenant_id          uuid NOT NULL,
    id                 uuid NOT NULL,
    name               text NOT NULL,
    status             smallint NOT NULL,
    definition         bytea NOT NULL,
    trigger_event_type text NOT NULL DEFAULT '',
    goal_event_type    text NOT NULL DEFAULT '',
    created_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text NOT NULL DEFAULT '',
    version            bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX journeys_trigger ON journeys (tenant_id, trigger_event_type) WHERE status = 1;
CREATE INDEX journeys_goal ON journeys (tenant_id, goal_event_type);
SELECT crm_enable_tenant_rls('journeys');

CREATE TABLE journey_enrolments (
    tenant_id    uuid NOT NULL,
    id           uuid NOT NULL,
    journey_id   uuid NOT NULL,
    contact_id   uuid NOT NULL,
    status       smallint NOT NULL,
    current_step text NOT NULL DEFAULT '',
    due_at       timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    error        text NOT NULL DEFAULT '',
    history      jsonb NOT NULL DEFAULT '[]',
    enrolled_at  timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, journey_id) REFERENCES journeys (tenant_id, id)
);
-- One active enrolment per contact and journey.
CREATE UNIQUE INDEX journey_enrolments_active ON journey_enrolments (tenant_id, journey_id, contact_id) WHERE status = 1;
CREATE INDEX journey_enrolments_journey ON journey_enrolments (tenant_id, journey_id, id);
CREATE INDEX journey_enrolments_contact ON journey_enrolments (tenant_id, contact_id);
SELECT crm_enable_tenant_rls('journey_enrolments');

-- Enrolments due to move on, across tenants (ids and times only, outside
-- row-level security like outbound_queue). A stepper locks a due row with
-- SKIP LOCKED while it moves the enrolment, so timers fire once across
-- pods; a paused journey's rows wait at 'infinity'.
CREATE TABLE journey_queue (
    tenant_id    uuid NOT NULL,
    enrolment_id uuid NOT NULL,
    journey_id   uuid NOT NULL,
    due_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, enrolment_id)
);
CREATE INDEX journey_queue_due ON journey_queue (due_at);
CREATE INDEX journey_queue_journey ON journey_queue (tenant_id, journey_id);

-- Opens and clicks per recipient, for journeys' branches.
ALTER TABLE send_recipients ADD COLUMN opened_at timestamptz, ADD COLUMN clicked_at timestamptz;
