-- Lead-capture forms and what people submitted through them.
CREATE TABLE forms (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    name              text NOT NULL,
    campaign_id       uuid,
    -- [{name, label, target, required}]
    fields            jsonb NOT NULL,
    consent_channel   smallint,
    consent_wording   text NOT NULL DEFAULT '',
    consent_required  boolean NOT NULL DEFAULT false,
    status            smallint NOT NULL,
    public_key        text NOT NULL,
    honeypot_field    text NOT NULL,
    thank_you_message text NOT NULL DEFAULT '',
    redirect_url      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT '',
    version           bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, public_key),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id)
);
SELECT crm_enable_tenant_rls('forms');

CREATE TABLE form_submissions (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    form_id         uuid NOT NULL,
    campaign_id     uuid,
    -- The SubmittedLead's fields by name.
    lead            jsonb NOT NULL,
    consent_given   boolean NOT NULL,
    consent_channel smallint,
    consent_wording text NOT NULL DEFAULT '',
    page_url        text NOT NULL DEFAULT '',
    -- contact_point_hash of the e-mail and phone given: an erasure names
    -- the person by these.
    point_hashes    text[] NOT NULL DEFAULT '{}',
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, form_id) REFERENCES forms (tenant_id, id)
);
CREATE INDEX form_submissions_form ON form_submissions (tenant_id, form_id, id DESC);
CREATE INDEX form_submissions_points ON form_submissions USING gin (point_hashes);
SELECT crm_enable_tenant_rls('form_submissions');
