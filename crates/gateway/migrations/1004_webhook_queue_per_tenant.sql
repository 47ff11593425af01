-- The dispatcher takes a few due deliveries per tenant (fairness).
CREATE INDEX webhook_queue_tenant_due ON webhook_queue (tenant_id, next_attempt);
