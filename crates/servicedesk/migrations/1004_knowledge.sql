-- Knowledge base: categories, articles with their revisions and readers'
-- feedback, searched with PostgreSQL full text (stemmed in each article's
-- language, title words weighted above body words).

-- The text search configuration of a language tag ("de-AT" -> german);
-- 'simple' (no stemming) for languages PostgreSQL has no stemmer for.
CREATE FUNCTION crm_text_config(language text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE split_part(lower(language), '-', 1)
        WHEN 'en' THEN 'english' WHEN 'de' THEN 'german' WHEN 'fr' THEN 'french'
        WHEN 'es' THEN 'spanish' WHEN 'it' THEN 'italian' WHEN 'pt' THEN 'portuguese'
        WHEN 'nl' THEN 'dutch' WHEN 'sv' THEN 'swedish' WHEN 'da' THEN 'danish'
        WHEN 'fi' THEN 'finnish' WHEN 'no' THEN 'norwegian' WHEN 'nb' THEN 'norwegian'
        WHEN 'ru' THEN 'russian' WHEN 'hu' THEN 'hungarian' WHEN 'ro' THEN 'romanian'
        WHEN 'tr' THEN 'turkish'
        ELSE 'simple' END::regconfig
$$;

CREATE TABLE article_categories (
    tenant_id   uuid NOT NULL,
    id          uuid NOT NULL,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT '',
    version     bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX article_categories_name ON article_categories (tenant_id, lower(name));
SELECT crm_enable_tenant_rls('article_categories');

CREATE TABLE articles (
    tenant_id         uuid NOT NULL,
    id                uuid NOT NULL,
    category_id       uuid,
    title             text NOT NULL,
    body              text NOT NULL,
    language          text NOT NULL,
    tags              text[] NOT NULL DEFAULT '{}',
    audience          smallint NOT NULL,
    status            smallint NOT NULL,
    revision          integer NOT NULL DEFAULT 1,
    published_at      timestamptz,
    helpful_count     integer NOT NULL DEFAULT 0,
    not_helpful_count integer NOT NULL DEFAULT 0,
    search            tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(crm_text_config(language), title), 'A')
        || setweight(to_tsvector(crm_text_config(language), body), 'B')) STORED,
    created_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text NOT NULL DEFAULT '',
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text NOT NULL DEFAULT '',
    version           bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, category_id) REFERENCES article_categories (tenant_id, id)
);
-- Search reads published articles only.
CREATE INDEX articles_search ON articles USING gin (search) WHERE status = 2;
CREATE INDEX articles_status ON articles (tenant_id, status, id);
SELECT crm_enable_tenant_rls('articles');

CREATE TABLE article_revisions (
    tenant_id  uuid NOT NULL,
    article_id uuid NOT NULL,
    revision   integer NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    edited_by  text NOT NULL,
    edited_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, article_id, revision),
    FOREIGN KEY (tenant_id, article_id) REFERENCES articles (tenant_id, id)
);
SELECT crm_enable_tenant_rls('article_revisions');

CREATE TABLE article_feedback (
    tenant_id  uuid NOT NULL,
    article_id uuid NOT NULL,
    voter      text NOT NULL,
    helpful    boolean NOT NULL,
    comment    text NOT NULL DEFAULT '',
    voted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, article_id, voter),
    FOREIGN KEY (tenant_id, article_id) REFERENCES articles (tenant_id, id)
);
SELECT crm_enable_tenant_rls('article_feedback');
