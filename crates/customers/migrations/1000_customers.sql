-- Customers service schema. Every table is tenant-scoped: tenant_id leads
-- every primary and unique key (unique checks ignore RLS) and every table is
-- under the tenant row-level security policy.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE field_definitions (
    tenant_id  uuid NOT NULL,
    entity     text NOT NULL CHECK (entity IN ('account', 'contact')),
    key        text NOT NULL,
    label      text NOT NULL,
    field_type integer NOT NULL,
    required   boolean NOT NULL DEFAULT false,
    options    text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, key)
);
SELECT crm_enable_tenant_rls('field_definitions');

CREATE TABLE accounts (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    name              text NOT NULL,
    domain            text NOT NULL DEFAULT '',
    industry          text NOT NULL DEFAULT '',
    size_band         integer NOT NULL DEFAULT 0,
    revenue_amount    numeric(28, 10),
    revenue_currency  text NOT NULL DEFAULT '',
    address           jsonb NOT NULL DEFAULT '{}',
    phone             text NOT NULL DEFAULT '',
    website           text NOT NULL DEFAULT '',
    parent_id         uuid,
    lifecycle_stage   integer NOT NULL DEFAULT 0,
    credit_rating     text NOT NULL DEFAULT '',
    owner_id          uuid,
    team_id           uuid,
    tags              text[] NOT NULL DEFAULT '{}',
    custom            jsonb NOT NULL DEFAULT '{}',
    source            text NOT NULL DEFAULT '',
    search_text       text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    created_by        text NOT NULL,
    updated_at        timestamptz NOT NULL,
    updated_by        text NOT NULL,
    version           bigint NOT NULL DEFAULT 1,
    deleted_at        timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES accounts (tenant_id, id)
);
SELECT crm_enable_tenant_rls('accounts');
CREATE INDEX accounts_created ON accounts (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX accounts_name ON accounts (tenant_id, lower(name), id) WHERE deleted_at IS NULL;
CREATE INDEX accounts_domain ON accounts (tenant_id, domain) WHERE deleted_at IS NULL AND domain <> '';
CREATE INDEX accounts_owner ON accounts (tenant_id, owner_id) WHERE deleted_at IS NULL;
CREATE INDEX accounts_tags ON accounts USING gin (tags);
CREATE INDEX accounts_search ON accounts USING gin (search_text gin_trgm_ops);

CREATE TABLE contacts (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    first_name        text NOT NULL DEFAULT '',
    middle_name       text NOT NULL DEFAULT '',
    last_name         text NOT NULL DEFAULT '',
    title             text NOT NULL DEFAULT '',
    account_id        uuid,
    birthday          date,
    address           jsonb NOT NULL DEFAULT '{}',
    emails            jsonb NOT NULL DEFAULT '[]',
    phones            jsonb NOT NULL DEFAULT '[]',
    handles           jsonb NOT NULL DEFAULT '[]',
    email_keys        text[] NOT NULL DEFAULT '{}',
    phone_keys        text[] NOT NULL DEFAULT '{}',
    preferred_channel integer NOT NULL DEFAULT 0,
    language          text NOT NULL DEFAULT '',
    consents          jsonb NOT NULL DEFAULT '[]',
    lifecycle_stage   integer NOT NULL DEFAULT 0,
    owner_id          uuid,
    team_id           uuid,
    tags              text[] NOT NULL DEFAULT '{}',
    custom            jsonb NOT NULL DEFAULT '{}',
    source            text NOT NULL DEFAULT '',
    search_text       text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL,
    created_by        text NOT NULL,
    updated_at        timestamptz NOT NULL,
    updated_by        text NOT NULL,
    version           bigint NOT NULL DEFAULT 1,
    deleted_at        timestamptz,
    erased_at         timestamptz,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
SELECT crm_enable_tenant_rls('contacts');
CREATE INDEX contacts_created ON contacts (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX contacts_last_name ON contacts (tenant_id, lower(last_name), id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_account ON contacts (tenant_id, account_id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_owner ON contacts (tenant_id, owner_id) WHERE deleted_at IS NULL;
CREATE INDEX contacts_email_keys ON contacts USING gin (email_keys);
CREATE INDEX contacts_phone_keys ON contacts USING gin (phone_keys);
CREATE INDEX contacts_tags ON contacts USING gin (tags);
CREATE INDEX contacts_search ON contacts USING gin (search_text gin_trgm_ops);

-- Idempotent creates: a retried create with the same request id returns
-- the record the first call made.
CREATE TABLE create_requests (
    tenant_id  uuid NOT NULL,
    entity     text NOT NULL,
    request_id text NOT NULL,
    record_id  uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, request_id)
);
SELECT crm_enable_tenant_rls('create_requests');

CREATE TABLE activities (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    kind             integer NOT NULL,
    subject          text NOT NULL DEFAULT '',
    body             text NOT NULL DEFAULT '',
    contact_id       uuid,
    account_id       uuid,
    related          jsonb NOT NULL DEFAULT '[]',
    occurred_at      timestamptz NOT NULL,
    ends_at          timestamptz,
    direction        integer NOT NULL DEFAULT 0,
    duration_seconds integer NOT NULL DEFAULT 0,
    outcome          text NOT NULL DEFAULT '',
    attendees        text[] NOT NULL DEFAULT '{}',
    due_at           timestamptz,
    remind_at        timestamptz,
    priority         integer NOT NULL DEFAULT 0,
    assignee_id      uuid,
    completed_at     timestamptz,
    owner_id         uuid,
    team_id          uuid,
    created_at       timestamptz NOT NULL,
    created_by       text NOT NULL,
    updated_at       timestamptz NOT NULL,
    updated_by       text NOT NULL,
    version          bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
SELECT crm_enable_tenant_rls('activities');
CREATE INDEX activities_contact_timeline ON activities (tenant_id, contact_id, occurred_at DESC, id DESC);
CREATE INDEX activities_account_timeline ON activities (tenant_id, account_id, occurred_at DESC, id DESC);
CREATE INDEX activities_open_tasks ON activities (tenant_id, assignee_id, due_at, id) WHERE kind = 6 AND completed_at IS NULL;

-- Pending task reminders across tenants, for the reminder scheduler (which
-- runs without a tenant scope). Holds ids and times only, no personal data.
CREATE TABLE task_reminders (
    tenant_id uuid NOT NULL,
    task_id   uuid NOT NULL,
    remind_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, task_id)
);
CREATE INDEX task_reminders_due ON task_reminders (remind_at);

CREATE TABLE segments (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    kind       integer NOT NULL,
    filter     bytea,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT crm_enable_tenant_rls('segments');

CREATE TABLE segment_members (
    tenant_id  uuid NOT NULL,
    segment_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, segment_id, contact_id),
    FOREIGN KEY (tenant_id, segment_id) REFERENCES segments (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
SELECT crm_enable_tenant_rls('segment_members');
CREATE INDEX segment_members_contact ON segment_members (tenant_id, contact_id);

-- Consent history: every change, for GDPR export and audits.
CREATE TABLE consent_events (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel    integer NOT NULL,
    status     integer NOT NULL,
    source     text NOT NULL,
    actor      text NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id)
);
SELECT crm_enable_tenant_rls('consent_events');
CREATE INDEX consent_events_contact ON consent_events (tenant_id, contact_id, changed_at);
