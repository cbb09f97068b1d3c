-- no-transaction
-- jobs_by_agent_status with what a page of ids and a capped count need.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_by_agent_status_page
    ON jobs (agent_id, status, created_at, seq) INCLUDE (organization_id, id);
