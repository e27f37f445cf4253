-- Fair delivery per receiver (docs/operations.md, "Notifications"): each row names its receiver's host, so that the
-- outbox is read a few rows per host at a time and one slow receiver cannot fill the window.
ALTER TABLE outbox ADD COLUMN host TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_host_pending ON outbox (host, status, next_attempt_at);
