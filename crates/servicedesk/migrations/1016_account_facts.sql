-- What SLA policies may match on of a ticket's account (its tags and text
-- custom fields), read from customers when the account is set and kept
-- current by account.updated.
ALTER TABLE tickets ADD COLUMN account_facts jsonb NOT NULL DEFAULT '{}';

-- Policies may match on the account: any of its tags, or one of the
-- values of one of its custom fields.
ALTER TABLE sla_policies ADD COLUMN account_tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE sla_policies ADD COLUMN account_field text NOT NULL DEFAULT '';
ALTER TABLE sla_policies ADD COLUMN account_field_values text[] NOT NULL DEFAULT '{}';
