-- The e-mail channel: support addresses, the Message-IDs that thread mail
-- into tickets, the mail waiting to go out, and the answers to the
-- satisfaction surveys it carries.

CREATE TABLE mailboxes (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    address    text NOT NULL,
    name       text NOT NULL DEFAULT '',
    group_id   uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('mailboxes');

-- Which tenant an address belongs to, read by the inbound listener before
-- it knows the tenant (so not under RLS, like sla_alarms); one tenant per
-- address across the platform. Written with the mailbox, in its
-- transaction.
CREATE TABLE mail_addresses (
    address    text PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    mailbox_id uuid NOT NULL,
    FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE CASCADE
);

-- Every Message-ID received into or sent from a ticket: a reply naming one
-- in In-Reply-To or References belongs to that ticket. `correspondent` is
-- the keyed hash of the outside address (kit::events::contact_point_hash),
-- never the address: a subject token "[#123]" threads only mail from an
-- address that already wrote on or was written to on the ticket.
CREATE TABLE mail_threads (
    tenant_id     uuid NOT NULL,
    message_id    text NOT NULL,
    ticket_id     uuid NOT NULL,
    mailbox_id    uuid NOT NULL,
    correspondent text NOT NULL,
    inbound       boolean NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, message_id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX mail_threads_ticket ON mail_threads (tenant_id, ticket_id, at);
SELECT crm_enable_tenant_rls('mail_threads');

-- Mail to send: agents' public replies on e-mail tickets (kind 1) and
-- satisfaction surveys of solved ones (kind 2). Filled in the transaction
-- of the reply or the solve and drained by the mail sender with SKIP
-- LOCKED (not under RLS: the sender works for every tenant). The body is
-- not copied: the sender reads the ticket message, so an erasure before
-- sending leaves nothing to send.
CREATE TABLE mail_queue (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    ticket_id   uuid NOT NULL,
    kind        smallint NOT NULL,
    message_id  uuid,
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX mail_queue_due ON mail_queue (next_at);

-- Requesters' answers to satisfaction surveys: one per ticket.
CREATE TABLE satisfaction_ratings (
    tenant_id            uuid NOT NULL,
    ticket_id            uuid NOT NULL,
    requester_contact_id uuid,
    account_id           uuid,
    score                smallint NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment              text NOT NULL DEFAULT '',
    answered_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, ticket_id),
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX satisfaction_ratings_requester ON satisfaction_ratings (tenant_id, requester_contact_id, answered_at DESC);
CREATE INDEX satisfaction_ratings_account ON satisfaction_ratings (tenant_id, account_id, answered_at DESC);
SELECT crm_enable_tenant_rls('satisfaction_ratings');
