-- Scheduled reports (e-mailed as CSV with the chart).
-- Report schedules: when, to whom, and with whose visibility (the owner's
-- when scheduling: visibility 1 own, 2 team, 3 tenant, and teams).
CREATE TABLE report_schedules (
    tenant_id   uuid NOT NULL,
    report_id   uuid NOT NULL,
    frequency   smallint NOT NULL,
    hour        smallint NOT NULL,
    day         smallint NOT NULL,
    recipients  text[] NOT NULL,
    scope_user  uuid,
    scope_teams uuid[] NOT NULL DEFAULT '{}',
    visibility  smallint NOT NULL,
    next_run_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, report_id)
);
SELECT crm_enable_tenant_rls('report_schedules');

-- When each schedule is due: ids and times only, outside row-level
-- security, so one pass of the scan sees every tenant; SKIP LOCKED makes
-- each run happen on one pod.
CREATE TABLE report_schedule_due (
    tenant_id uuid NOT NULL,
    report_id uuid NOT NULL,
    due_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, report_id)
);
CREATE INDEX report_schedule_due_at ON report_schedule_due (due_at);
