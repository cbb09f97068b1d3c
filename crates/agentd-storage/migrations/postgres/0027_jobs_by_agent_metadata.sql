-- no-transaction
-- The metadata filter of an agent's job list (`metadata={"batch": "7"}`).
-- The indexed value is the job's metadata under its agent's id,
-- `{"<agent id>": {"batch": "7"}}`, and the list asks for containment of
-- the same shape: with jsonb_path_ops each key hashes the whole path, agent
-- included, so the filter reads only that agent's matching jobs, however
-- many jobs the agent or other agents with the same metadata have
-- (scripts/bench-jobs-10m.sh).
CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_by_agent_metadata
    ON jobs USING gin (jsonb_set('{}', ARRAY[agent_id::text], metadata) jsonb_path_ops);
