-- NPS surveys of accounts: who was asked, what they answered.

CREATE TABLE nps_surveys (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    account_id uuid NOT NULL,
    -- Sent from it; a mailbox deleted later only stops mail not yet sent.
    mailbox_id uuid NOT NULL,
    invited    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('nps_surveys');

CREATE TABLE nps_invitations (
    tenant_id  uuid NOT NULL,
    survey_id  uuid NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, survey_id, contact_id),
    FOREIGN KEY (tenant_id, survey_id) REFERENCES nps_surveys (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX nps_invitations_contact ON nps_invitations (tenant_id, contact_id);
SELECT crm_enable_tenant_rls('nps_invitations');

-- One answer per invitation; an erased person's answer keeps its score
-- without them (contact NULL) or their words.
CREATE TABLE nps_responses (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    survey_id   uuid NOT NULL,
    account_id  uuid NOT NULL,
    contact_id  uuid,
    score       smallint NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment     text NOT NULL DEFAULT '',
    answered_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, survey_id, contact_id),
    FOREIGN KEY (tenant_id, survey_id) REFERENCES nps_surveys (tenant_id, id)
);
CREATE INDEX nps_responses_account ON nps_responses (tenant_id, account_id, answered_at DESC, id DESC);
CREATE INDEX nps_responses_contact ON nps_responses (tenant_id, contact_id) WHERE contact_id IS NOT NULL;
SELECT crm_enable_tenant_rls('nps_responses');

-- The survey an NPS mail (kind 5) asks for.
ALTER TABLE mail_queue ADD COLUMN nps_survey_id uuid;
