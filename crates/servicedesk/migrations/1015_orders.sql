-- Orders from sales (`crm.sales.order.created`): what requesters bought,
-- the after-sales context of their tickets. A projection: the sales
-- service owns orders; erasure and merges in customers apply here too.

CREATE TABLE orders (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    account_id     uuid,
    contact_ids    uuid[] NOT NULL DEFAULT '{}',
    -- Money as sales sent it: a decimal string, never a float.
    total_amount   text NOT NULL DEFAULT '',
    total_currency text NOT NULL DEFAULT '',
    opportunity_id uuid,
    ordered_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX orders_account ON orders (tenant_id, account_id, ordered_at DESC);
CREATE INDEX orders_contacts ON orders USING gin (contact_ids);
SELECT crm_enable_tenant_rls('orders');
