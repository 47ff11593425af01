-- Identity: tenants, users, teams, refresh tokens, signing keys, idempotency
-- records and the audit log. Tenant tables are under row-level security.

CREATE TABLE tenants (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    default_currency text NOT NULL DEFAULT 'EUR',
    time_zone        text NOT NULL DEFAULT 'UTC',
    locale           text NOT NULL DEFAULT 'en',
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id     uuid NOT NULL REFERENCES tenants (id),
    id            uuid NOT NULL,
    email         text NOT NULL,
    display_name  text NOT NULL,
    password_hash text NOT NULL,
    roles         text[] NOT NULL,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('users');

-- Login looks a user up by e-mail before any tenant is known, so this
-- index of (e-mail -> tenant, user) is outside row-level security. It holds
-- no password material; the hash is read from `users` in the tenant scope.
CREATE TABLE logins (
    email     text PRIMARY KEY,
    tenant_id uuid NOT NULL,
    user_id   uuid NOT NULL
);

CREATE TABLE teams (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    id        uuid NOT NULL,
    name      text NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
SELECT crm_enable_tenant_rls('teams');

CREATE TABLE team_members (
    tenant_id uuid NOT NULL,
    team_id   uuid NOT NULL,
    user_id   uuid NOT NULL,
    PRIMARY KEY (tenant_id, team_id, user_id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE
);
SELECT crm_enable_tenant_rls('team_members');

-- Refresh tokens are stored as SHA-256 hashes. Each use rotates the token;
-- presenting a rotated one again revokes its whole family (theft signal).
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    user_id     uuid NOT NULL,
    family      uuid NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- Token signing keys. The newest active key signs; retired keys stay in the
-- JWKS until every token they signed has expired.
CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    private_pem text NOT NULL,
    public_raw  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       integer,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
SELECT crm_enable_tenant_rls('idempotency_keys');

CREATE TABLE audit_log (
    tenant_id uuid NOT NULL,
    id        uuid NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    target    text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
SELECT crm_enable_tenant_rls('audit_log');
