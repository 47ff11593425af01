-- When a recipient used the message's unsubscribe link: a second use
-- changes nothing more.
ALTER TABLE send_recipients ADD COLUMN unsubscribed_at timestamptz;
