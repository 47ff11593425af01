-- Phone calls logged as ticket messages: direction, outcome and length,
-- all three or none.
ALTER TABLE ticket_messages
    ADD COLUMN call_direction smallint,
    ADD COLUMN call_outcome   smallint,
    ADD COLUMN call_seconds   integer,
    ADD CONSTRAINT ticket_messages_call CHECK (
        (call_direction IS NULL) = (call_outcome IS NULL)
        AND (call_direction IS NULL) = (call_seconds IS NULL)
        AND (call_seconds IS NULL OR call_seconds BETWEEN 0 AND 86400));
