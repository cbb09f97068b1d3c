-- An idempotency key remembers the request it was first used with (as
-- SQLite's 0005): reusing it for a different request is refused.
ALTER TABLE idempotency_keys ADD COLUMN request_hash text;
