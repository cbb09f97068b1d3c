-- Timestamps are RFC 3339 text with six fraction digits and `Z`, so they sort as text.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    credits     REAL,                      -- NULL: unlimited
    spent       REAL NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    lookup           TEXT NOT NULL UNIQUE,  -- a prefix of the key's hash, for the index
    key_hash         BLOB NOT NULL,
    scopes           TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT NOT NULL,
    revoked_at       TEXT
);

CREATE TABLE agents (
    id                  TEXT PRIMARY KEY,
    organization_id     TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    engine_class_id     TEXT NOT NULL,
    disable_cache       INTEGER NOT NULL DEFAULT 0,
    cache_failed_jobs   INTEGER NOT NULL DEFAULT 0,
    current_version_id  TEXT NOT NULL,
    creator_key_id      INTEGER,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX agents_by_org ON agents (organization_id, created_at);

CREATE TABLE agent_versions (
    id                 TEXT PRIMARY KEY,
    agent_id           TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    version_name       TEXT NOT NULL,
    description        TEXT,
    input_definitions  TEXT NOT NULL,
    engine_config      TEXT NOT NULL,
    creator_key_id     INTEGER,
    created_at         TEXT NOT NULL
);
CREATE INDEX agent_versions_by_agent ON agent_versions (agent_id, created_at);

CREATE TABLE jobs (
    id                   TEXT PRIMARY KEY,
    organization_id      TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    agent_id             TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    -- no foreign key: a job outlives the deletion of its version
    agent_version_id     TEXT NOT NULL,
    status               INTEGER NOT NULL,
    inputs               TEXT NOT NULL,
    metadata             TEXT NOT NULL,
    outputs              TEXT,
    error_message        TEXT,
    input_tokens         INTEGER,
    output_tokens        INTEGER,
    cached_input_tokens  INTEGER,
    cost                 REAL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    creator_key_id       INTEGER,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX jobs_by_agent ON jobs (agent_id, created_at);

CREATE TABLE job_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    status         INTEGER NOT NULL,
    error_message  TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);

CREATE TABLE files (
    id               TEXT PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    file_name        TEXT NOT NULL,
    content_type     TEXT NOT NULL,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    created_at       TEXT NOT NULL
);
