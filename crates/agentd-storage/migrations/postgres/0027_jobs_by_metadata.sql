-- no-transaction
-- The metadata filter (`metadata={"batch": "7"}`) as containment
-- (`metadata @> …`) finds its jobs through this index instead of walking
-- the agent's whole history.
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_by_metadata ON jobs USING gin (metadata jsonb_path_ops);
