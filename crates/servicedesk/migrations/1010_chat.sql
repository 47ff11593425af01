-- Chat connectors and the conversations they carry: each conversation
-- (the connector's id) continues its open ticket.

CREATE TABLE chat_channels (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    name              text NOT NULL,
    group_id          uuid,
    -- The signing secret is derived from SERVICEDESK_LINK_KEY, the
    -- channel id and this number, never stored; rotating counts it up.
    secret_generation integer NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT '',
    version           bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX chat_channels_name ON chat_channels (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('chat_channels');

CREATE TABLE chat_conversations (
    tenant_id    uuid NOT NULL,
    channel_id   uuid NOT NULL,
    conversation text NOT NULL,
    ticket_id    uuid NOT NULL,
    PRIMARY KEY (tenant_id, channel_id, conversation),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES chat_channels (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, ticket_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX chat_conversations_ticket ON chat_conversations (tenant_id, ticket_id);
SELECT crm_enable_tenant_rls('chat_conversations');
