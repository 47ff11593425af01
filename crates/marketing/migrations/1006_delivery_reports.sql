-- What the relay or the SMS provider reported about each message; each
-- report applies once.
ALTER TABLE send_recipients
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN bounced_at   timestamptz,
    ADD COLUMN bounce       text NOT NULL DEFAULT '';
