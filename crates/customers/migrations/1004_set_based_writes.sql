-- Set-based writes for bulk import (ADR 0016).
--
-- 1. Indexes no query can use. The service reads contacts and accounts as a
--    role under row-level security, and PostgreSQL only turns a predicate
--    into an index condition under RLS when its operator is leakproof;
--    `&&` on arrays and pg_trgm's LIKE/% are not, so these GIN indexes were
--    never scanned (EXPLAIN as the runtime role shows a scan of the tenant
--    with a filter) while every insert paid for them. Fuzzy search reads
--    `search_index` (outside RLS, ADR 0008) and exact e-mail/phone lookups
--    read `contact_points`.
DROP INDEX contacts_email_keys;
DROP INDEX contacts_phone_keys;
DROP INDEX contacts_tags;
DROP INDEX contacts_search;
DROP INDEX accounts_tags;
DROP INDEX accounts_search;

-- 2. Inserted contacts reach `search_index` and `contact_points` through
--    one statement-level trigger over the inserted rows (a transition
--    table): an import batch of thousands of rows costs two set-based
--    INSERTs instead of two PL/pgSQL calls per row. Updates stay row-level;
--    they come one contact at a time.
DROP TRIGGER contacts_search ON contacts;
CREATE TRIGGER contacts_search AFTER UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION crm_index_contact();
DROP TRIGGER contacts_points ON contacts;
CREATE TRIGGER contacts_points AFTER UPDATE OF email_keys, phone_keys, deleted_at
    ON contacts FOR EACH ROW EXECUTE FUNCTION crm_index_contact_points();

CREATE FUNCTION crm_index_inserted_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_index (tenant_id, kind, id, owner_id, team_id, title, subtitle, search_text)
    SELECT tenant_id, 'contact', id, owner_id, team_id,
           trim(first_name || ' ' || last_name), coalesce(email_keys[1], ''), search_text
      FROM inserted_contacts
     WHERE deleted_at IS NULL AND search_text <> '';
    INSERT INTO contact_points (tenant_id, point, contact_id)
    SELECT tenant_id, p, id FROM inserted_contacts, unnest(email_keys || phone_keys) AS p
     WHERE deleted_at IS NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER contacts_inserted AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS inserted_contacts
    FOR EACH STATEMENT EXECUTE FUNCTION crm_index_inserted_contacts();
