-- Files attached to ticket messages, by reference (ADR 0026 addendum):
-- [{"uri", "file_name", "content_type", "size_bytes"}], at most 10.
ALTER TABLE ticket_messages ADD COLUMN attachments jsonb NOT NULL DEFAULT '[]';
