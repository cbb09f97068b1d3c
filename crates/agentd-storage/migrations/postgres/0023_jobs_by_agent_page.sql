-- no-transaction
-- An agent's jobs newest first, with what a page of ids and a capped count
-- need (organization, id), so both are read from the index alone
-- (scripts/bench-jobs-10m.sh). Built CONCURRENTLY, one statement per
-- migration, so that rolling out on a large jobs table does not block writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_by_agent_page
    ON jobs (agent_id, created_at, seq) INCLUDE (organization_id, id);
