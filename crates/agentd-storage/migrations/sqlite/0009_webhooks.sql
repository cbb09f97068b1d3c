-- Webhook subscriptions of agents and their deliveries, a durable queue:
-- a delivery is written in the transaction that makes its job final,
-- leased by one dispatcher at a time and retried on a schedule; every
-- attempt is kept for the delivery log.
CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id         TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    -- JSON array of event names, e.g. ["job.succeeded","job.failed"]
    events           TEXT NOT NULL,
    -- whsec_<base64>: the HMAC key, needed in clear to sign
    secret           TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    active           INTEGER NOT NULL DEFAULT 1,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX webhooks_by_agent ON webhooks (agent_id, created_at);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    job_id           TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    event            TEXT NOT NULL,
    -- pending | delivered | failed
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    attempted_at     TEXT NOT NULL,
    response_status  INTEGER,
    latency_ms       INTEGER NOT NULL,
    error            TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
