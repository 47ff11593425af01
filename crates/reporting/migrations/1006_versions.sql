-- The source's version of each deal and ticket as last applied: an event
-- or a backfilled snapshot older than what is stored changes nothing, so a
-- backfill and the stream may overlap in any order.
ALTER TABLE deals ADD COLUMN version bigint NOT NULL DEFAULT 0;
ALTER TABLE tickets ADD COLUMN version bigint NOT NULL DEFAULT 0;
