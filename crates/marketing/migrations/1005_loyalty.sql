-- Loyalty: programs, members' balances with every change as an entry,
-- earned lots that expire oldest first, and coupons.
CREATE TABLE loyalty_programs (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    name              text NOT NULL,
    currency          text NOT NULL,
    -- [{event, points_per_unit, fixed_points}]
    earn_rules        jsonb NOT NULL DEFAULT '[]',
    -- [{name, threshold}] by rising threshold
    tiers             jsonb NOT NULL DEFAULT '[]',
    points_valid_days integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT '',
    version           bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT crm_enable_tenant_rls('loyalty_programs');

CREATE TABLE loyalty_accounts (
    tenant_id   uuid NOT NULL,
    program_id  uuid NOT NULL,
    contact_id  uuid NOT NULL,
    -- The second fence against overdrawing (the first: the row lock).
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    lifetime    bigint NOT NULL DEFAULT 0,
    tier        text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, program_id, contact_id),
    FOREIGN KEY (tenant_id, program_id) REFERENCES loyalty_programs (tenant_id, id)
);
SELECT crm_enable_tenant_rls('loyalty_accounts');

CREATE TABLE loyalty_entries (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    program_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    kind       smallint NOT NULL,
    points     bigint NOT NULL,
    -- Earned lots: what is left to spend or expire.
    remaining  bigint NOT NULL DEFAULT 0 CHECK (remaining >= 0),
    expires_at timestamptz,
    reason     text NOT NULL DEFAULT '',
    -- "order:<id>", "payment:<id>": earned once per source.
    source     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, program_id, source)
);
CREATE INDEX loyalty_entries_account ON loyalty_entries (tenant_id, program_id, contact_id, id DESC);
CREATE INDEX loyalty_entries_lots ON loyalty_entries (tenant_id, program_id, contact_id, expires_at)
    WHERE remaining > 0;
SELECT crm_enable_tenant_rls('loyalty_entries');

-- When an account's oldest unspent lot expires, for the expiry scan of
-- every tenant (no row-level security: it holds ids and times only).
CREATE TABLE loyalty_expiry_schedule (
    tenant_id  uuid NOT NULL,
    program_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    due_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, program_id, contact_id)
);
CREATE INDEX loyalty_expiry_due ON loyalty_expiry_schedule (due_at);

-- Which contact an order earns for (from sales.order.created), so that its
-- payments earn for the same contact.
CREATE TABLE loyalty_orders (
    tenant_id  uuid NOT NULL,
    order_id   uuid NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
);
CREATE INDEX loyalty_orders_contact ON loyalty_orders (tenant_id, contact_id);
SELECT crm_enable_tenant_rls('loyalty_orders');

CREATE TABLE coupons (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    code             text NOT NULL,
    percent_off      numeric,
    amount_off       numeric,
    currency         text NOT NULL DEFAULT '',
    max_redemptions  integer NOT NULL DEFAULT 0,
    once_per_contact boolean NOT NULL DEFAULT false,
    valid_from       timestamptz,
    valid_until      timestamptz,
    redemptions      integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL DEFAULT '',
    version          bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, code),
    CHECK (max_redemptions = 0 OR redemptions <= max_redemptions)
);
SELECT crm_enable_tenant_rls('coupons');

CREATE TABLE coupon_redemptions (
    tenant_id       uuid NOT NULL,
    id              uuid NOT NULL,
    coupon_id       uuid NOT NULL,
    contact_id      uuid,
    -- The contact for once-per-contact coupons, the redemption otherwise:
    -- unique, so a contact redeems such a coupon once.
    once_key        uuid NOT NULL,
    order_reference text NOT NULL DEFAULT '',
    redeemed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, coupon_id, once_key),
    FOREIGN KEY (tenant_id, coupon_id) REFERENCES coupons (tenant_id, id)
);
SELECT crm_enable_tenant_rls('coupon_redemptions');
