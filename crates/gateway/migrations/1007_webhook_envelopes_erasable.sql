-- A delivery keeps its event only while it may still be sent: finished
-- deliveries (delivered or failed for good) drop the envelope, and pending
-- ones about an erased contact are cancelled (found by the event's subject).
ALTER TABLE webhook_deliveries ADD COLUMN subject text NOT NULL DEFAULT '';
UPDATE webhook_deliveries SET envelope = '' WHERE status <> 'pending';
CREATE INDEX webhook_deliveries_pending_subject
    ON webhook_deliveries (tenant_id, subject) WHERE status = 'pending';
