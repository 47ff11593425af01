-- Customer analytics' read models: accounts (crm.customers.account.*),
-- orders, invoices and payments (crm.sales.order.*, invoice.*, payment.*),
-- and the churn risk last computed per account. Ids, enums, places,
-- amounts and dates only: no names.

CREATE TABLE accounts (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    owner_id   uuid,
    team_id    uuid,
    -- The source's LifecycleStage.
    lifecycle  smallint NOT NULL DEFAULT 0,
    industry   text NOT NULL DEFAULT '',
    country    text NOT NULL DEFAULT '',
    region     text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('accounts');

CREATE TABLE orders (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    account_id uuid,
    owner_id   uuid,
    team_id    uuid,
    total      numeric(20, 2) NOT NULL,
    currency   text NOT NULL,
    ordered_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX orders_account ON orders (tenant_id, account_id, ordered_at);
CREATE INDEX orders_ordered ON orders (tenant_id, ordered_at);
SELECT crm_enable_tenant_rls('orders');

-- Invoices with what was paid and when it was paid in full. The account is
-- the order's.
CREATE TABLE invoices (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    order_id   uuid,
    account_id uuid,
    amount     numeric(20, 2) NOT NULL,
    paid       numeric(20, 2) NOT NULL DEFAULT 0,
    currency   text NOT NULL,
    issued_on  date NOT NULL,
    due_on     date NOT NULL,
    paid_on    date,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX invoices_account ON invoices (tenant_id, account_id);
SELECT crm_enable_tenant_rls('invoices');

-- The churn risk last computed for each account.
CREATE TABLE churn_risks (
    tenant_id   uuid NOT NULL,
    account_id  uuid NOT NULL,
    score       integer NOT NULL,
    -- 1 low, 2 medium, 3 high.
    level       smallint NOT NULL,
    reasons     text[] NOT NULL DEFAULT '{}',
    computed_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
SELECT crm_enable_tenant_rls('churn_risks');

-- When each account's churn risk is due to be computed again: an order,
-- ticket or activity about the account makes it due at once; time alone,
-- daily. Ids and times only, outside row-level security, so one pass of the
-- churn scan sees every tenant; it takes due rows with SKIP LOCKED, so one
-- pod computes each.
CREATE TABLE churn_due (
    tenant_id  uuid NOT NULL,
    account_id uuid NOT NULL,
    due_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, account_id)
);
CREATE INDEX churn_due_at ON churn_due (due_at);

ALTER TABLE activities ADD COLUMN account_id uuid;
-- A lead's own territory (dashboards filter by region).
ALTER TABLE leads ADD COLUMN region text NOT NULL DEFAULT '';
CREATE INDEX activities_account ON activities (tenant_id, account_id, occurred_at) WHERE account_id IS NOT NULL;
CREATE INDEX tickets_account ON tickets (tenant_id, account_id) WHERE account_id IS NOT NULL;
