-- Tax comes from the product, never from the caller of a quote.
ALTER TABLE products ADD COLUMN tax_percent numeric(7, 4) NOT NULL DEFAULT 0
    CHECK (tax_percent >= 0 AND tax_percent <= 100);
