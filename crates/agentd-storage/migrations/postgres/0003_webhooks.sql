-- Webhook subscriptions of agents and their deliveries (as SQLite's 0009):
-- a delivery is written in the transaction that makes its job final,
-- leased by one dispatcher at a time and retried on a schedule; every
-- attempt is kept for the delivery log.
CREATE TABLE webhooks (
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id         uuid NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    url              text NOT NULL,
    -- array of event names, e.g. ["job.succeeded","job.failed"]
    events           jsonb NOT NULL,
    -- whsec_<base64>: the HMAC key, needed in clear to sign
    secret           text NOT NULL,
    description      text NOT NULL DEFAULT '',
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX webhooks_by_agent ON webhooks (agent_id, created_at);

CREATE TABLE webhook_deliveries (
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    webhook_id       uuid NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    job_id           uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    event            text NOT NULL,
    -- pending | delivered | failed
    state            text NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_by_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    delivery_id      uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    attempted_at     timestamptz NOT NULL,
    response_status  integer,
    latency_ms       bigint NOT NULL,
    error            text,
    PRIMARY KEY (delivery_id, attempt)
);
