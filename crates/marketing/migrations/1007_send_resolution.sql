-- Campaign and segment sends resolve their audience in the background
-- (ADR 0023). The resolver holds a lease on its send, renewed page by
-- page; a lease that runs out belongs to a resolver that stopped, and the
-- send is cancelled with the reason in `error` (nothing of it was queued).
-- Ids and times only, so outside row-level security, like outbound_queue.
ALTER TABLE sends ADD COLUMN error text NOT NULL DEFAULT '';

CREATE TABLE send_resolutions (
    tenant_id   uuid NOT NULL,
    send_id     uuid NOT NULL,
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, send_id)
);
CREATE INDEX send_resolutions_lease ON send_resolutions (lease_until);
