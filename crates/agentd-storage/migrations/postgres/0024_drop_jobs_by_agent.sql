-- no-transaction
-- Replaced by jobs_by_agent_page.
DROP INDEX CONCURRENTLY IF EXISTS jobs_by_agent;
