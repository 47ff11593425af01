-- Products, price books, quotes with approvals, orders, invoices, payments.

CREATE TABLE products (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    sku        text NOT NULL,
    name       text NOT NULL,
    family     text NOT NULL DEFAULT '',
    unit       text NOT NULL DEFAULT 'each',
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX products_sku ON products (tenant_id, lower(sku));
SELECT crm_enable_tenant_rls('products');

CREATE TABLE price_books (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    currency   char(3) NOT NULL,
    is_default boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX price_books_one_default ON price_books (tenant_id) WHERE is_default;
SELECT crm_enable_tenant_rls('price_books');

CREATE TABLE price_book_entries (
    tenant_id     uuid NOT NULL,
    price_book_id uuid NOT NULL,
    product_id    uuid NOT NULL,
    list_price    numeric(28, 10) NOT NULL CHECK (list_price >= 0),
    PRIMARY KEY (tenant_id, price_book_id, product_id),
    FOREIGN KEY (tenant_id, price_book_id) REFERENCES price_books (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, product_id) REFERENCES products (tenant_id, id)
);
SELECT crm_enable_tenant_rls('price_book_entries');

CREATE TABLE sales_settings (
    tenant_id                   uuid NOT NULL PRIMARY KEY,
    discount_approval_threshold numeric(5, 2) NOT NULL DEFAULT 20
);
SELECT crm_enable_tenant_rls('sales_settings');

CREATE TABLE quotes (
    tenant_id        uuid NOT NULL,
    id               uuid NOT NULL,
    opportunity_id   uuid NOT NULL,
    price_book_id    uuid NOT NULL,
    status           smallint NOT NULL,
    lines            jsonb NOT NULL DEFAULT '[]',
    valid_until      date,
    currency         char(3) NOT NULL,
    subtotal         numeric(28, 10) NOT NULL,
    discount_total   numeric(28, 10) NOT NULL,
    tax_total        numeric(28, 10) NOT NULL,
    total            numeric(28, 10) NOT NULL,
    max_discount     numeric(7, 4) NOT NULL DEFAULT 0,
    owner_id         uuid,
    team_id          uuid,
    approval_comment text NOT NULL DEFAULT '',
    decided_by       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL DEFAULT '',
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text NOT NULL DEFAULT '',
    version          bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, opportunity_id) REFERENCES opportunities (tenant_id, id)
);
CREATE INDEX quotes_opportunity ON quotes (tenant_id, opportunity_id);
SELECT crm_enable_tenant_rls('quotes');

CREATE TABLE orders (
    tenant_id      uuid NOT NULL,
    id             uuid NOT NULL,
    quote_id       uuid NOT NULL,
    opportunity_id uuid NOT NULL,
    status         smallint NOT NULL,
    start_date     date NOT NULL,
    end_date       date NOT NULL,
    renewal_date   date NOT NULL,
    total          numeric(28, 10) NOT NULL,
    currency       char(3) NOT NULL,
    owner_id       uuid,
    team_id        uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL DEFAULT '',
    version        bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, quote_id),
    FOREIGN KEY (tenant_id, quote_id) REFERENCES quotes (tenant_id, id)
);
SELECT crm_enable_tenant_rls('orders');

CREATE TABLE invoices (
    tenant_id  uuid NOT NULL,
    id         uuid NOT NULL,
    order_id   uuid NOT NULL,
    amount     numeric(28, 10) NOT NULL CHECK (amount > 0),
    paid       numeric(28, 10) NOT NULL DEFAULT 0,
    currency   char(3) NOT NULL,
    issued_on  date NOT NULL,
    due_on     date NOT NULL,
    status     smallint NOT NULL,
    owner_id   uuid,
    team_id    uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT '',
    version    bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id),
    CHECK (paid <= amount)
);
CREATE INDEX invoices_order ON invoices (tenant_id, order_id);
SELECT crm_enable_tenant_rls('invoices');

-- Open invoices' due dates, ids only and outside row-level security, so one
-- scheduler sees every tenant's (as task reminders in customers); a row
-- leaves when its invoice is paid or reported overdue.
CREATE TABLE invoice_due_dates (
    tenant_id  uuid NOT NULL,
    invoice_id uuid NOT NULL,
    due_on     date NOT NULL,
    PRIMARY KEY (tenant_id, invoice_id)
);
CREATE INDEX invoice_due_dates_due ON invoice_due_dates (due_on);

CREATE TABLE payments (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    invoice_id  uuid NOT NULL,
    amount      numeric(28, 10) NOT NULL CHECK (amount > 0),
    currency    char(3) NOT NULL,
    received_on date NOT NULL,
    method      text NOT NULL DEFAULT '',
    reference   text NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by text NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
SELECT crm_enable_tenant_rls('payments');
