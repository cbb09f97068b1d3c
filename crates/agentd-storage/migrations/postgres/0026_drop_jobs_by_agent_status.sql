-- no-transaction
-- Replaced by jobs_by_agent_status_page.
DROP INDEX CONCURRENTLY IF EXISTS jobs_by_agent_status;
