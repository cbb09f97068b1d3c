-- An idempotency key remembers the request it was first used with, so that
-- reusing it for a different request is refused instead of answered with
-- the first job. Keys stored before this column have no hash and match any
-- request.
ALTER TABLE idempotency_keys ADD COLUMN request_hash TEXT;
