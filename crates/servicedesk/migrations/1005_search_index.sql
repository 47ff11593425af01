-- Search index over tickets and published articles for the gateway's
-- search across services (kit::search; outside row-level security like
-- the other services' indexes, ADR 0008: its one reader binds the tenant
-- and the caller's visibility). A ticket's owner and team are its
-- assignee and group; articles have neither and are found by everyone
-- who may read tickets.
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

CREATE FUNCTION crm_index_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
    VALUES (NEW.tenant_id, 'ticket', NEW.id, NEW.owner_id, NEW.team_id, NEW.subject,
            '#' || NEW.number || ' ' || CASE NEW.status WHEN 1 THEN 'new' WHEN 2 THEN 'open'
                WHEN 3 THEN 'pending customer' WHEN 4 THEN 'pending third party' WHEN 5 THEN 'on hold'
                WHEN 6 THEN 'solved' ELSE 'closed' END,
            lower(NEW.number || ' ' || NEW.subject))
    ON CONFLICT (tenant_id, kind, id) DO UPDATE SET owner_id = excluded.owner_id, team_id = excluded.team_id,
        title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    RETURN NULL;
END $$;
CREATE TRIGGER tickets_search AFTER INSERT OR UPDATE OF subject, status, owner_id, team_id ON tickets
    FOR EACH ROW EXECUTE FUNCTION crm_index_ticket();

CREATE FUNCTION crm_index_article() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 2 THEN
        DELETE FROM search_index WHERE tenant_id = NEW.tenant_id AND kind = 'article' AND id = NEW.id;
        RETURN NULL;
    END IF;
    INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
    VALUES (NEW.tenant_id, 'article', NEW.id, NULL, NULL, NEW.title,
            'article ' || NEW.language || CASE WHEN NEW.audience = 2 THEN ', public' ELSE ', internal' END,
            lower(NEW.title))
    ON CONFLICT (tenant_id, kind, id) DO UPDATE SET
        title = excluded.title, subtitle = excluded.subtitle, search_text = excluded.search_text;
    RETURN NULL;
END $$;
CREATE TRIGGER articles_search AFTER INSERT OR UPDATE OF title, status, language, audience ON articles
    FOR EACH ROW EXECUTE FUNCTION crm_index_article();

SELECT crm_enable_search_terms();
