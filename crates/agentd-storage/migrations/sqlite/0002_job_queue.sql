-- Jobs become a durable queue: leases held by workers, result cache keys,
-- failure classes, erased data; idempotency keys per agent.

ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE jobs ADD COLUMN cache_key TEXT;
-- invalid | upstream | internal: who is to blame for a FAILURE
ALTER TABLE jobs ADD COLUMN error_kind TEXT;
ALTER TABLE jobs ADD COLUMN data_deleted INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_queue ON jobs (status, created_at);
CREATE INDEX jobs_by_cache_key ON jobs (cache_key, created_at) WHERE cache_key IS NOT NULL;

CREATE TABLE idempotency_keys (
    agent_id    TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (agent_id, key)
);
