-- A duplicate merged into another ticket keeps a pointer to it.
ALTER TABLE tickets ADD COLUMN merged_into_id uuid;
ALTER TABLE tickets ADD FOREIGN KEY (tenant_id, merged_into_id) REFERENCES tickets (tenant_id, id);
