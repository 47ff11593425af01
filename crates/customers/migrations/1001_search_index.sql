-- Search index: one row per live contact and account, kept in step by
-- triggers. Deliberately outside row-level security: under RLS PostgreSQL
-- may not evaluate non-leakproof operators (LIKE, pg_trgm's <%) inside an
-- index scan, so trigram search would scan every row. The one query that
-- reads it (store::search) always binds tenant_id. See ADR 0008.
CREATE TABLE search_index (
    tenant_id   uuid NOT NULL,
    kind        text NOT NULL,
    id          uuid NOT NULL,
    owner_id    uuid,
    team_id     uuid,
    title       text NOT NULL,
    subtitle    text NOT NULL,
    search_text text NOT NULL,
    PRIMARY KEY (tenant_id, kind, id)
);
CREATE INDEX search_index_trgm ON search_index USING gin (search_text gin_trgm_ops);

CREATE FUNCTION crm_index_contact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL OR NEW.search_text = '' THEN
        DELETE FROM search_index WHERE tenant_id = NEW.tenant_id AND kind = 'contact' AND id = NEW.id;
    ELSE
        INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
        VALUES (NEW.tenant_id, 'contact', NEW.id, NEW.owner_id, NEW.team_id,
                trim(NEW.first_name || ' ' || NEW.last_name), coalesce(NEW.email_keys[1], ''), NEW.search_text)
        ON CONFLICT (tenant_id, kind, id) DO UPDATE SET owner_id = excluded.owner_id, team_id = excluded.team_id,
            title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER contacts_search AFTER INSERT OR UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION crm_index_contact();

CREATE FUNCTION crm_index_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.deleted_at IS NOT NULL THEN
        DELETE FROM search_index WHERE tenant_id = NEW.tenant_id AND kind = 'account' AND id = NEW.id;
    ELSE
        INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
        VALUES (NEW.tenant_id, 'account', NEW.id, NEW.owner_id, NEW.team_id, NEW.name, NEW.domain, NEW.search_text)
        ON CONFLICT (tenant_id, kind, id) DO UPDATE SET owner_id = excluded.owner_id, team_id = excluded.team_id,
            title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER accounts_search AFTER INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION crm_index_account();
