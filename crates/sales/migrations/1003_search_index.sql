-- Search index over leads and deals, kept by triggers; outside row-level
-- security for the same reason as in the customers service (ADR 0008):
-- its one reader (kit::search) always binds the tenant and visibility.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

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

CREATE FUNCTION crm_index_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM search_index WHERE tenant_id = OLD.tenant_id AND kind = 'lead' AND id = OLD.id;
        RETURN NULL;
    END IF;
    INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
    VALUES (NEW.tenant_id, 'lead', NEW.id, NEW.owner_id, NEW.team_id,
            trim(NEW.first_name || ' ' || NEW.last_name), trim(NEW.company || ' ' || NEW.email),
            lower(concat_ws(' ', NEW.first_name, NEW.last_name, NEW.company, NEW.email, NEW.company_domain)))
    ON CONFLICT (tenant_id, kind, id) DO UPDATE SET owner_id = excluded.owner_id, team_id = excluded.team_id,
        title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    RETURN NULL;
END $$;
CREATE TRIGGER leads_search AFTER INSERT OR UPDATE OR DELETE ON leads
    FOR EACH ROW EXECUTE FUNCTION crm_index_lead();

CREATE FUNCTION crm_index_opportunity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM search_index WHERE tenant_id = OLD.tenant_id AND kind = 'opportunity' AND id = OLD.id;
        RETURN NULL;
    END IF;
    INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
    VALUES (NEW.tenant_id, 'opportunity', NEW.id, NEW.owner_id, NEW.team_id,
            NEW.name, trim(to_char(NEW.amount, 'FM999999999999990.00') || ' ' || NEW.currency),
            lower(NEW.name))
    ON CONFLICT (tenant_id, kind, id) DO UPDATE SET owner_id = excluded.owner_id, team_id = excluded.team_id,
        title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    RETURN NULL;
END $$;
CREATE TRIGGER opportunities_search AFTER INSERT OR UPDATE OF name, amount, currency, owner_id, team_id ON opportunities
    FOR EACH ROW EXECUTE FUNCTION crm_index_opportunity();
