-- Links between tickets, stored once per pair (first_id < second_id) with
-- the kind as seen from first_id.
CREATE TABLE ticket_links (
    tenant_id uuid NOT NULL,
    first_id  uuid NOT NULL,
    second_id uuid NOT NULL,
    kind      smallint NOT NULL,
    linked_by text NOT NULL,
    linked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, first_id, second_id),
    CHECK (first_id < second_id),
    FOREIGN KEY (tenant_id, first_id) REFERENCES tickets (tenant_id, id),
    FOREIGN KEY (tenant_id, second_id) REFERENCES tickets (tenant_id, id)
);
CREATE INDEX ticket_links_second ON ticket_links (tenant_id, second_id);
SELECT crm_enable_tenant_rls('ticket_links');
