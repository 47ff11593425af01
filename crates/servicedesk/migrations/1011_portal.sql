-- Support forms (the gateway's public /support/{key} pages) and the mail
-- the customer portal sends: acknowledgements of form tickets and portal
-- links, from the form's mailbox.

CREATE TABLE support_forms (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    group_id   uuid,
    -- Acknowledgements, portal links and replies are sent from it; a
    -- mailbox in use by a form is not deleted (RESTRICT).
    mailbox_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, mailbox_id) REFERENCES mailboxes (tenant_id, id) ON DELETE RESTRICT
);
CREATE UNIQUE INDEX support_forms_name ON support_forms (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('support_forms');

-- A portal link (kind 4) is mailed to a contact, not about a ticket; a
-- ticket's first mail (the acknowledgement, kind 3) has no thread yet to
-- take the mailbox from.
ALTER TABLE mail_queue ALTER COLUMN ticket_id DROP NOT NULL;
ALTER TABLE mail_queue ADD COLUMN mailbox_id uuid;
ALTER TABLE mail_queue ADD COLUMN contact_id uuid;
ALTER TABLE mail_queue ADD CONSTRAINT mail_queue_about
    CHECK (ticket_id IS NOT NULL OR (contact_id IS NOT NULL AND mailbox_id IS NOT NULL));
-- One pending portal link per person: asking again while one waits sends one.
CREATE UNIQUE INDEX mail_queue_portal_link ON mail_queue (tenant_id, contact_id) WHERE kind = 4;
