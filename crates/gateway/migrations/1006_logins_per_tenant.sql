-- A login e-mail is unique within a tenant, not across tenants: creating a
-- user must not reveal that the address belongs to someone in another
-- tenant. Login finds the e-mail's users in every tenant (or in the one
-- named) and signs in where the password matches.
ALTER TABLE logins DROP CONSTRAINT logins_pkey;
ALTER TABLE logins ADD PRIMARY KEY (email, tenant_id);
