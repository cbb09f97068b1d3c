-- Whether a caller waits for the job's end (a sync run, an MCP tool call):
-- only then is its end announced to the other processes (NOTIFY), since a
-- notifying commit takes PostgreSQL's one notification-queue lock.
ALTER TABLE jobs ADD COLUMN awaited boolean NOT NULL DEFAULT false;
