-- Won revenue shared among campaigns, per deal and model (sales owns the
-- deals; this is marketing's reading of its won events).
CREATE TABLE attributions (
    tenant_id      uuid NOT NULL,
    opportunity_id uuid NOT NULL,
    model          smallint NOT NULL,
    campaign_id    uuid NOT NULL,
    amount         numeric NOT NULL,
    currency       text NOT NULL,
    won_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, opportunity_id, model, campaign_id)
);
CREATE INDEX attributions_campaign ON attributions (tenant_id, campaign_id, model);
SELECT crm_enable_tenant_rls('attributions');
