-- Platform tables every service has: the transactional outbox, the inbox of
-- handled events, and the helper that puts a table under tenant row-level
-- security in one line.

-- crm_enable_tenant_rls('contacts') makes every row of the table visible and
-- writable only inside a transaction whose app.tenant_id is the row's
-- tenant_id. FORCE makes the policy hold for the table owner too. An unset
-- app.tenant_id gives NULL, which matches nothing: a forgotten scope returns
-- no rows rather than every tenant's rows.
CREATE OR REPLACE FUNCTION crm_enable_tenant_rls(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON %s', target);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s
            USING (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting(''app.tenant_id'', true), '''')::uuid)',
        target);
END;
$$;

-- Events waiting to be published, in commit order (seq). Rows are kept a
-- while after publication for inspection and deleted by the relay later.
-- Not under RLS: the relay publishes every tenant's events, and only kit
-- code writes here, from inside tenant-scoped transactions.
CREATE TABLE outbox (
    seq               bigserial PRIMARY KEY,
    event_id          uuid NOT NULL UNIQUE,
    tenant_id         uuid NOT NULL,
    aggregate_id      uuid NOT NULL,
    aggregate_version bigint NOT NULL,
    subject           text NOT NULL,
    envelope          bytea NOT NULL,
    trace_parent      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    published_at      timestamptz
);

CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Wakes the relay as soon as a transaction with events commits (NOTIFY is
-- delivered at commit), once per statement rather than per row.
CREATE OR REPLACE FUNCTION crm_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('crm_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION crm_outbox_notify();

-- Ids of events a consumer has applied, written in the same transaction as
-- the consumer's own changes: an event redelivered after a crash is seen here
-- and acknowledged without being applied again.
CREATE TABLE processed_events (
    consumer     text NOT NULL,
    event_id     uuid NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
