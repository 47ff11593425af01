-- Service desk: tickets, their conversations and their history. Every
-- tenant table is under row-level security. A ticket's assignee and group
-- are kept as owner_id and team_id, the columns record visibility
-- (kit::access::Scope) filters in every service.

-- The last ticket number of each tenant: numbers come from here inside
-- the creating transaction (the row lock orders concurrent creates), so
-- they are sequential and never reused.
CREATE TABLE ticket_numbers (
    tenant_id uuid PRIMARY KEY,
    last      bigint NOT NULL
);
SELECT crm_enable_tenant_rls('ticket_numbers');

CREATE TABLE tickets (
    tenant_id            uuid NOT NULL,
    id                   uuid NOT NULL,
    number               bigint NOT NULL,
    subject              text NOT NULL,
    description          text NOT NULL DEFAULT '',
    type                 smallint NOT NULL,
    priority             smallint NOT NULL,
    status               smallint NOT NULL,
    channel              smallint NOT NULL,
    requester_contact_id uuid,
    account_id           uuid,
    owner_id             uuid,
    team_id              uuid,
    tags                 text[] NOT NULL DEFAULT '{}',
    product_id           uuid,
    order_id             uuid,
    opportunity_id       uuid,
    due_at               timestamptz,
    parent_ticket_id     uuid,
    first_responded_at   timestamptz,
    solved_at            timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL DEFAULT now(),
    updated_by           text NOT NULL DEFAULT '',
    version              bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, number),
    FOREIGN KEY (tenant_id, parent_ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX tickets_status ON tickets (tenant_id, status, id);
CREATE INDEX tickets_owner ON tickets (tenant_id, owner_id, id);
CREATE INDEX tickets_team ON tickets (tenant_id, team_id, id);
CREATE INDEX tickets_requester ON tickets (tenant_id, requester_contact_id, id);
CREATE INDEX tickets_account ON tickets (tenant_id, account_id, id);
SELECT crm_enable_tenant_rls('tickets');

CREATE TABLE ticket_messages (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    ticket_id  uuid NOT NULL,
    kind       smallint NOT NULL,
    body       text NOT NULL,
    channel    smallint NOT NULL,
    author_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX ticket_messages_ticket ON ticket_messages (tenant_id, ticket_id, id);
SELECT crm_enable_tenant_rls('ticket_messages');

CREATE TABLE ticket_history (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    ticket_id  uuid NOT NULL,
    field      text NOT NULL,
    old_value  text NOT NULL DEFAULT '',
    new_value  text NOT NULL DEFAULT '',
    actor      text NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX ticket_history_ticket ON ticket_history (tenant_id, ticket_id, id);
SELECT crm_enable_tenant_rls('ticket_history');

CREATE TABLE create_requests (
    tenant_id   uuid NOT NULL,
    entity      text NOT NULL,
    request_id  text NOT NULL,
    fingerprint bytea,
    record_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity, request_id)
);
SELECT crm_enable_tenant_rls('create_requests');
