-- The dictionary of the typo-tolerant search pass (kit::search): every word
-- (3+ letters or digits, lower case) of the titles in a service's
-- search_index, per tenant. A misspelt query word is matched against these
-- few thousand distinct words instead of against every record's trigrams,
-- then the records holding the corrected words are found by the substring
-- index. Outside row-level security like search_index (ADR 0008); only
-- kit::search reads it, always with the tenant bound.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE search_terms (
    tenant_id uuid NOT NULL,
    term      text NOT NULL,
    PRIMARY KEY (tenant_id, term)
);
CREATE INDEX search_terms_trgm ON search_terms USING gin (term gin_trgm_ops);

CREATE FUNCTION crm_title_terms(title text) RETURNS SETOF text
LANGUAGE sql IMMUTABLE AS $$
    SELECT DISTINCT w FROM regexp_split_to_table(lower(title), '[^[:alnum:]]+') AS w WHERE length(w) >= 3
$$;

-- Kept in step by statement-level triggers on search_index: new titles add
-- their words; words that no record of the tenant holds any more leave, so
-- an erased person's name does not stay behind in the dictionary.
CREATE FUNCTION crm_search_terms_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO search_terms (tenant_id, term)
        SELECT DISTINCT n.tenant_id, t FROM new_rows n, crm_title_terms(n.title) AS t
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM search_terms st
         USING (SELECT DISTINCT o.tenant_id, t FROM old_rows o, crm_title_terms(o.title) AS t) AS gone
         WHERE st.tenant_id = gone.tenant_id AND st.term = gone.t
           AND NOT EXISTS (SELECT 1 FROM search_index s
                            WHERE s.tenant_id = gone.tenant_id AND s.search_text LIKE '%' || gone.t || '%');
    END IF;
    RETURN NULL;
END;
$$;

-- Called by a service's migration once its search_index exists: the
-- triggers, and the dictionary of the records already indexed.
CREATE FUNCTION crm_enable_search_terms() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
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
    SELECT DISTINCT s.tenant_id, t FROM search_index s, crm_title_terms(s.title) AS t
    ON CONFLICT DO NOTHING;
END;
$$;
