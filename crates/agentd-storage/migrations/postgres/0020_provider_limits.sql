-- Provider limits shared by every process on this database (see
-- src/provider_limits.rs). Instants are milliseconds since the Unix epoch.
-- Calls started recently, per provider: the per-minute limit counts them.
CREATE TABLE provider_call_starts (
    provider    TEXT NOT NULL,
    started_ms  BIGINT NOT NULL
);
CREATE INDEX provider_call_starts_by_provider ON provider_call_starts (provider, started_ms);
-- Calls in flight, per provider: a slot is held until released or until its
-- lease ends (the process holding it was killed).
CREATE TABLE provider_slots (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX provider_slots_by_provider ON provider_slots (provider, expires_ms);

-- PostgreSQL: processes serialize on a provider with a transaction-scoped
-- advisory lock (SQLite's single writer serializes them already).
