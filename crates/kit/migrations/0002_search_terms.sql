-- Typo-tolerant search (kit::search, ADR 0017). Every title in a service's
-- search_index is also kept as its list of words (`title_words`, GIN
-- indexed), and the tenant's distinct words of 3+ letters or digits form a
-- dictionary (`search_terms`, trigram indexed). A misspelt query word is
-- matched against the dictionary's few thousand words instead of against
-- every record's trigrams; the records holding a corrected word are then
-- found through `title_words`. Outside row-level security like
-- search_index (ADR 0008); only kit::search reads them, always with the
-- tenant bound.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE search_terms (
    tenant_id uuid NOT NULL,
    term      text NOT NULL,
    PRIMARY KEY (tenant_id, term)
);
-- No pending list (fastupdate): the planner prices a GIN index with a
-- pending list it cannot see into as too dear and, until a VACUUM has run,
-- prefers reading every word of the tenant. New words are rare, so writing
-- them straight into the index costs little.
CREATE INDEX search_terms_trgm ON search_terms USING gin (term gin_trgm_ops) WITH (fastupdate = off);

-- Kept in step by statement-level triggers on search_index: new titles add
-- their words; words that no record of the tenant holds any more leave, so
-- an erased person's name does not stay behind in the dictionary.
CREATE FUNCTION crm_search_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO search_terms (tenant_id, term)
        SELECT DISTINCT n.tenant_id, w FROM new_rows n, unnest(n.title_words) AS w
         WHERE length(w) >= 3
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM search_terms st
         USING (SELECT DISTINCT o.tenant_id, w FROM old_rows o, unnest(o.title_words) AS w) AS gone
         WHERE st.tenant_id = gone.tenant_id AND st.term = gone.w
           AND NOT EXISTS (SELECT 1 FROM search_index s
                            WHERE s.tenant_id = gone.tenant_id AND s.title_words @> ARRAY[gone.w]);
    END IF;
    RETURN NULL;
END;
$$;

-- Called by a service's migration once its search_index exists: the words
-- column and its index, the triggers, and the dictionary of the records
-- already indexed.
CREATE FUNCTION crm_enable_search_terms() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    ALTER TABLE search_index ADD COLUMN title_words text[]
        GENERATED ALWAYS AS (regexp_split_to_array(lower(title), '[[:space:][:punct:]]+')) STORED;
    -- Without a pending list, like search_terms_trgm: a few words per
    -- title, and a plan that does not wait for a VACUUM.
    CREATE INDEX search_index_title_words ON search_index USING gin (title_words) WITH (fastupdate = off);
    CREATE TRIGGER search_terms_inserted AFTER INSERT ON search_index
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION crm_search_terms_changed();
    CREATE TRIGGER search_terms_updated AFTER UPDATE ON search_index
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION crm_search_terms_changed();
    CREATE TRIGGER search_terms_deleted AFTER DELETE ON search_index
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION crm_search_terms_changed();
    INSERT INTO search_terms (tenant_id, term)
    SELECT DISTINCT s.tenant_id, w FROM search_index s, unnest(s.title_words) AS w
     WHERE length(w) >= 3
    ON CONFLICT DO NOTHING;
END;
$$;
